package e2e

import (
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOpenAIGoClientStreams drives the gateway with the official openai-go SDK.
func TestOpenAIGoClientStreams(t *testing.T) {
	client := openai.NewClient(option.WithBaseURL(gw.gateway+"/v1"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	stream := client.Chat.Completions.NewStreaming(t.Context(), openai.ChatCompletionNewParams{
		Model:    "model-a",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say something")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{
			IncludeUsage: openai.Bool(true),
		},
	})
	var acc openai.ChatCompletionAccumulator
	chunks := 0
	for stream.Next() {
		acc.AddChunk(stream.Current())
		chunks++
	}
	require.NoError(t, stream.Err())
	require.NotEmpty(t, acc.Choices)
	assert.Equal(t, strings.Join(wantTokens(16), ""), acc.Choices[0].Message.Content)
	assert.Equal(t, "upstream-a", acc.Model)
	assert.EqualValues(t, 16, acc.Usage.CompletionTokens)
	assert.Greater(t, chunks, 16)

	_, err := client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{
		Model:    "no-such-model",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")},
	})
	var apiErr *openai.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 404, apiErr.StatusCode)
	assert.Equal(t, "model_not_found", apiErr.Code)
}

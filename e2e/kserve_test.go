package e2e

import (
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOpenAIGoCompletionsWithKServeBackend drives a model served by a
// KServe v2 (Triton generate_stream) backend with openai-go's Completions.
func TestOpenAIGoCompletionsWithKServeBackend(t *testing.T) {
	g := startGateway(t, translateConfig)
	client := openai.NewClient(option.WithBaseURL(g.gateway+"/v1"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	params := openai.CompletionNewParams{
		Model:  "trt-model",
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
	}

	t.Run("generate_stream", func(t *testing.T) {
		stream := client.Completions.NewStreaming(t.Context(), params)
		var text strings.Builder
		finish := ""
		for stream.Next() {
			c := stream.Current()
			require.Len(t, c.Choices, 1)
			text.WriteString(c.Choices[0].Text)
			if c.Choices[0].FinishReason != "" {
				finish = string(c.Choices[0].FinishReason)
			}
			assert.Equal(t, "ensemble", c.Model)
		}
		require.NoError(t, stream.Err())
		assert.Equal(t, strings.Join(wantTokens(16), ""), text.String())
		assert.Equal(t, "stop", finish)
		assert.Equal(t, "ensemble", gw.backendB.Stats().LastModel, "the model name travelled in the path")
	})

	t.Run("generate", func(t *testing.T) {
		p := params
		p.MaxTokens = openai.Int(2)
		resp, err := client.Completions.New(t.Context(), p)
		require.NoError(t, err)
		require.Len(t, resp.Choices, 1)
		assert.Equal(t, "tok0 tok1 ", resp.Choices[0].Text)
	})

	t.Run("mid-stream error", func(t *testing.T) {
		stream := client.Completions.NewStreaming(t.Context(), params, option.WithHeader("x-fakellm-fail", "midstream"))
		for stream.Next() {
		}
		require.Error(t, stream.Err())
		assert.Contains(t, stream.Err().Error(), "Executor failed")
	})

	t.Run("chat is refused", func(t *testing.T) {
		_, err := client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{
			Model: "trt-model", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")},
		})
		var apiErr *openai.Error
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, 400, apiErr.StatusCode)
		assert.Equal(t, "unsupported_by_backend", apiErr.Code)
	})
}

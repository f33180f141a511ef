package e2e

import (
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakellm"
)

// TestOpenAIGoWithOllamaBackend drives a model served by an Ollama-protocol
// backend (/api/chat, NDJSON) with the official openai-go SDK.
func TestOpenAIGoWithOllamaBackend(t *testing.T) {
	g := startGateway(t, translateConfig)
	client := openai.NewClient(option.WithBaseURL(g.gateway+"/v1"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	weather := openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
		Name:       "get_weather",
		Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]string{"type": "string"}}},
	})
	params := openai.ChatCompletionNewParams{
		Model:         "llama-model",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage("Weather in Paris?")},
		Tools:         []openai.ChatCompletionToolUnionParam{weather},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	}

	t.Run("streaming with a tool call", func(t *testing.T) {
		stream := client.Chat.Completions.NewStreaming(t.Context(), params)
		var acc openai.ChatCompletionAccumulator
		finished := 0
		for stream.Next() {
			acc.AddChunk(stream.Current())
			if _, ok := acc.JustFinishedToolCall(); ok {
				finished++
			}
		}
		require.NoError(t, stream.Err())
		require.NotEmpty(t, acc.Choices)
		msg := acc.Choices[0].Message
		assert.Equal(t, "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7 tok8 tok9 tok10 tok11 tok12 tok13 tok14 tok15 ", msg.Content)
		require.Len(t, msg.ToolCalls, 1)
		assert.Equal(t, "get_weather", msg.ToolCalls[0].Function.Name)
		assert.JSONEq(t, fakellm.FakeToolInput, msg.ToolCalls[0].Function.Arguments)
		assert.NotEmpty(t, msg.ToolCalls[0].ID)
		assert.Equal(t, "tool_calls", acc.Choices[0].FinishReason)
		assert.EqualValues(t, 16, acc.Usage.CompletionTokens)
		assert.Equal(t, "llama-upstream", acc.Model)
		assert.Equal(t, 1, finished, "the accumulator saw the tool call complete")
		assert.Equal(t, "llama-upstream", gw.backendA.Stats().LastModel, "the backend got the Ollama request")
	})

	t.Run("non-streaming", func(t *testing.T) {
		p := params
		p.Tools = nil
		p.MaxTokens = openai.Int(3)
		resp, err := client.Chat.Completions.New(t.Context(), p)
		require.NoError(t, err)
		assert.Equal(t, "tok0 tok1 tok2 ", resp.Choices[0].Message.Content)
		assert.Equal(t, "length", resp.Choices[0].FinishReason)
		assert.EqualValues(t, 3, resp.Usage.CompletionTokens)
	})

	t.Run("mid-stream backend error", func(t *testing.T) {
		p := params
		p.Tools = nil
		stream := client.Chat.Completions.NewStreaming(t.Context(), p, option.WithHeader("x-fakellm-fail", "midstream"))
		for stream.Next() {
		}
		require.Error(t, stream.Err())
		assert.Contains(t, stream.Err().Error(), "error was encountered while running the model")
	})

	t.Run("backend error status", func(t *testing.T) {
		_, err := client.Chat.Completions.New(t.Context(), params, option.WithHeader("x-fakellm-fail", "429"))
		var apiErr *openai.Error
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, 429, apiErr.StatusCode)
	})
}

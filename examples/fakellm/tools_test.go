package fakellm_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakellm"
)

func TestChatToolCalls(t *testing.T) {
	_, url := start(t, fakellm.Options{Tokens: 2})
	tools := []map[string]any{{"type": "function", "function": map[string]any{"name": "get_weather"}}}
	user := []map[string]any{{"role": "user", "content": "weather?"}}

	type toolChunk struct {
		Choices []struct {
			Delta struct {
				ToolCalls []struct {
					ID       string
					Function struct{ Name, Arguments string }
				} `json:"tool_calls"`
			}
			FinishReason *string `json:"finish_reason"`
		}
	}
	var chunks []toolChunk
	for _, data := range events(t, readAll(t, post(t, url, "/v1/chat/completions", chatBody("m", true, map[string]any{"tools": tools, "messages": user}), nil))) {
		if data == "[DONE]" {
			continue
		}
		var one toolChunk
		require.NoError(t, json.Unmarshal([]byte(data), &one))
		chunks = append(chunks, one)
	}
	var args strings.Builder
	name, id, finish := "", "", ""
	for _, c := range chunks {
		for _, ch := range c.Choices {
			for _, tc := range ch.Delta.ToolCalls {
				args.WriteString(tc.Function.Arguments)
				name += tc.Function.Name
				id += tc.ID
			}
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
	}
	assert.Equal(t, "get_weather", name)
	assert.Equal(t, fakellm.FakeToolCallID, id)
	assert.JSONEq(t, fakellm.FakeToolInput, args.String())
	assert.Equal(t, "tool_calls", finish)

	var resp struct {
		Choices []struct {
			Message struct {
				ToolCalls []struct {
					Function struct{ Name, Arguments string }
				} `json:"tool_calls"`
			}
			FinishReason string `json:"finish_reason"`
		}
	}
	after := append(user, map[string]any{"role": "tool", "tool_call_id": fakellm.FakeToolCallID, "content": "sunny"})
	body := readAll(t, post(t, url, "/v1/chat/completions", chatBody("m", false, map[string]any{"tools": tools, "messages": after}), nil))
	require.NoError(t, json.Unmarshal(body, &resp))
	assert.Empty(t, resp.Choices[0].Message.ToolCalls, "after a tool result the answer is text")
	assert.Equal(t, "stop", resp.Choices[0].FinishReason)
}

package fakellm_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakellm"
	"github.com/streamgate/streamgate/extproc/sse"
)

var anthropicHeaders = map[string]string{"anthropic-version": "2023-06-01"}

type anthropicEvent struct {
	typ  string
	data map[string]any
}

func anthropicEvents(t *testing.T, body []byte) []anthropicEvent {
	t.Helper()
	d := &sse.Decoder{}
	d.Feed(body)
	d.Close()
	var out []anthropicEvent
	for {
		ev, ok, err := d.Next()
		require.NoError(t, err)
		if !ok {
			return out
		}
		var data map[string]any
		require.NoError(t, json.Unmarshal(ev.Data, &data))
		require.Equal(t, string(ev.Type), data["type"], "the event name repeats the data's type")
		out = append(out, anthropicEvent{string(ev.Type), data})
	}
}

func TestMessagesStreamWithToolUse(t *testing.T) {
	_, url := start(t, fakellm.Options{Tokens: 3})
	resp := post(t, url, "/v1/messages", map[string]any{
		"model": "claude-test", "max_tokens": 100, "stream": true,
		"tools":    []map[string]any{{"name": "get_weather", "input_schema": map[string]any{"type": "object"}}},
		"messages": []map[string]any{{"role": "user", "content": "weather?"}},
	}, anthropicHeaders)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	evs := anthropicEvents(t, readAll(t, resp))
	var types []string
	var text, input strings.Builder
	for _, e := range evs {
		types = append(types, e.typ)
		if d, ok := e.data["delta"].(map[string]any); ok {
			if s, ok := d["text"].(string); ok {
				text.WriteString(s)
			}
			if s, ok := d["partial_json"].(string); ok {
				input.WriteString(s)
			}
		}
	}
	assert.Equal(t, []string{
		"message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta", "content_block_delta",
		"content_block_stop", "content_block_start", "content_block_delta", "content_block_delta", "content_block_delta",
		"content_block_delta", "content_block_stop", "message_delta", "message_stop",
	}, types)
	assert.Equal(t, "tok0 tok1 tok2 ", text.String())
	assert.JSONEq(t, fakellm.FakeToolInput, input.String())
	assert.Equal(t, "tool_use", evs[len(evs)-2].data["delta"].(map[string]any)["stop_reason"])
}

func TestMessagesNonStreaming(t *testing.T) {
	_, url := start(t, fakellm.Options{Tokens: 5})
	resp := post(t, url, "/v1/messages", map[string]any{
		"model": "claude-test", "max_tokens": 2,
		"messages": []map[string]any{{"role": "user", "content": "hi"}},
	}, anthropicHeaders)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var msg struct {
		StopReason string `json:"stop_reason"`
		Content    []struct{ Type, Text string }
		Usage      struct {
			OutputTokens int `json:"output_tokens"`
		}
	}
	require.NoError(t, json.Unmarshal(readAll(t, resp), &msg))
	assert.Equal(t, "max_tokens", msg.StopReason)
	require.Len(t, msg.Content, 1)
	assert.Equal(t, "tok0 tok1 ", msg.Content[0].Text)
	assert.Equal(t, 2, msg.Usage.OutputTokens)
}

func TestMessagesErrors(t *testing.T) {
	_, url := start(t, fakellm.Options{Tokens: 4})
	body := map[string]any{"model": "m", "max_tokens": 10, "stream": true, "messages": []map[string]any{{"role": "user", "content": "x"}}}
	for name, tc := range map[string]struct {
		body    any
		headers map[string]string
		status  int
		errType string
	}{
		"no max_tokens":     {map[string]any{"model": "m", "messages": []any{}}, anthropicHeaders, 400, "invalid_request_error"},
		"no version header": {body, nil, 400, "invalid_request_error"},
		"overloaded":        {body, map[string]string{"anthropic-version": "2023-06-01", fakellm.HeaderFail: "529"}, 529, "overloaded_error"},
		"rate limited":      {body, map[string]string{"anthropic-version": "2023-06-01", fakellm.HeaderFail: "429"}, 429, "rate_limit_error"},
	} {
		t.Run(name, func(t *testing.T) {
			resp := post(t, url, "/v1/messages", tc.body, tc.headers)
			assert.Equal(t, tc.status, resp.StatusCode)
			var e struct {
				Type  string
				Error struct{ Type string }
			}
			require.NoError(t, json.Unmarshal(readAll(t, resp), &e))
			assert.Equal(t, "error", e.Type)
			assert.Equal(t, tc.errType, e.Error.Type)
		})
	}
	t.Run("midstream error event", func(t *testing.T) {
		resp := post(t, url, "/v1/messages", body, map[string]string{"anthropic-version": "2023-06-01", fakellm.HeaderFail: "midstream"})
		evs := anthropicEvents(t, readAll(t, resp))
		last := evs[len(evs)-1]
		assert.Equal(t, "error", last.typ)
		assert.Equal(t, "overloaded_error", last.data["error"].(map[string]any)["type"])
	})
}

package fakellm_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakellm"
)

func ollamaLines(t *testing.T, body []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "line %q", sc.Text())
		out = append(out, m)
	}
	return out
}

func TestOllamaChatStream(t *testing.T) {
	_, url := start(t, fakellm.Options{Tokens: 3})
	resp := post(t, url, "/api/chat", map[string]any{
		"model": "llama", "messages": []map[string]any{{"role": "user", "content": "hi"}},
		"tools": []map[string]any{{"type": "function", "function": map[string]any{"name": "get_weather"}}},
	}, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/x-ndjson", resp.Header.Get("Content-Type"))
	lines := ollamaLines(t, readAll(t, resp))
	require.Len(t, lines, 5, "3 tokens, the tool call, the done line")
	text := ""
	for _, l := range lines[:3] {
		text += l["message"].(map[string]any)["content"].(string)
	}
	assert.Equal(t, "tok0 tok1 tok2 ", text)
	call := lines[3]["message"].(map[string]any)["tool_calls"].([]any)[0].(map[string]any)["function"].(map[string]any)
	assert.Equal(t, "get_weather", call["name"])
	args, _ := json.Marshal(call["arguments"])
	assert.JSONEq(t, fakellm.FakeToolInput, string(args))
	assert.Equal(t, true, lines[4]["done"])
	assert.EqualValues(t, 3, lines[4]["eval_count"])
}

func TestOllamaChatNonStreamAndErrors(t *testing.T) {
	_, url := start(t, fakellm.Options{Tokens: 5})
	resp := post(t, url, "/api/chat", map[string]any{"model": "llama", "stream": false, "options": map[string]any{"num_predict": 2},
		"messages": []map[string]any{{"role": "user", "content": "hi"}}}, nil)
	var got struct {
		Message    struct{ Content string }
		Done       bool
		DoneReason string `json:"done_reason"`
	}
	require.NoError(t, json.Unmarshal(readAll(t, resp), &got))
	assert.Equal(t, "tok0 tok1 ", got.Message.Content)
	assert.True(t, got.Done)
	assert.Equal(t, "length", got.DoneReason)

	resp = post(t, url, "/api/chat", map[string]any{"model": "llama"}, map[string]string{fakellm.HeaderFail: "500"})
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.Contains(t, string(readAll(t, resp)), `"error"`)

	resp = post(t, url, "/api/chat", map[string]any{"model": "llama"}, map[string]string{fakellm.HeaderFail: "midstream"})
	lines := ollamaLines(t, readAll(t, resp))
	assert.Contains(t, lines[len(lines)-1], "error")
}

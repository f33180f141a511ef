package fakellm_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakellm"
)

func TestKServeGenerate(t *testing.T) {
	_, url := start(t, fakellm.Options{Tokens: 3})
	resp := post(t, url, "/v2/models/ensemble/generate", map[string]any{"text_input": "hi", "max_tokens": 2}, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out struct {
		ModelName  string `json:"model_name"`
		TextOutput string `json:"text_output"`
	}
	require.NoError(t, json.Unmarshal(readAll(t, resp), &out))
	assert.Equal(t, "ensemble", out.ModelName)
	assert.Equal(t, "tok0 tok1 ", out.TextOutput)

	resp = post(t, url, "/v2/models/ensemble/generate_stream", map[string]any{"text_input": "hi"}, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	evs := events(t, readAll(t, resp))
	require.Len(t, evs, 3, "one event per token, no terminator")
	assert.JSONEq(t, `{"model_name":"ensemble","model_version":"1","text_output":"tok2 "}`, evs[2])

	resp = post(t, url, "/v2/models/ensemble/generate", map[string]any{}, nil)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp = post(t, url, "/v2/models/ensemble/generate_stream", map[string]any{"text_input": "hi"}, map[string]string{fakellm.HeaderFail: "midstream"})
	evs = events(t, readAll(t, resp))
	assert.Contains(t, evs[len(evs)-1], `"error"`)
}

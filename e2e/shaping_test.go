package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const shapingConfig = listeners + `backends:
  - name: backend-a
    protocol: openai
    endpoints: [{{.BackendA}}]
models:
  - name: shaped
    backend: backend-a
    shaping:
      max_tokens: 3
      forbid: [logit_bias]
      headers: {x-priority: batch}
`

// TestRequestShaping: the backend sees the model's ceiling and extra
// header; a forbidden field is refused before it reaches the backend.
func TestRequestShaping(t *testing.T) {
	g := startGateway(t, shapingConfig)
	req, err := http.NewRequest(http.MethodPost, g.gateway+"/v1/chat/completions",
		strings.NewReader(`{"model":"shaped","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"x"}]}`))
	require.NoError(t, err)
	req.Header.Set("x-e2e-tap", "shaping")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	pieces, err := readStream(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, wantTokens(3), pieces, "max_tokens lowered to the model's ceiling")
	assert.Equal(t, "batch", g.backendA.tap.requestHeaders("shaping").Get("x-priority"))

	before := g.backendA.Stats().Requests
	bad, err := http.Post(g.gateway+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"shaped","logit_bias":{},"messages":[]}`))
	require.NoError(t, err)
	requireOpenAIError(t, bad, http.StatusBadRequest, "field_not_allowed")
	assert.Equal(t, before, g.backendA.Stats().Requests)
}

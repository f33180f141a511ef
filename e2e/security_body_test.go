package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/extproc/auth"
)

// Keys of the request-body security gateway.
const (
	bodyKeyAcme  = "sk-e2e-body-acme-1a2b3c4d5e"
	bodyKeyGuest = "sk-e2e-body-guest-6f7a8b9c0d"
)

// bodySecurityConfig: acme may use every model under a token rate limit;
// guest may use model-b only, with a max_tokens cap of 50; "shaped"
// lowers max_tokens to 3.
const bodySecurityConfig = listeners + twoBackends + `models:
  - name: model-a
    backend: backend-a
  - name: model-b
    backend: backend-b
  - name: shaped
    backend: backend-a
    shaping:
      max_tokens: 3
auth:
  tenants:
    - name: acme
      models: ["*"]
      api_keys: [{hash: %[1]s}]
    - name: guest
      models: [model-b]
      max_tokens: 50
      api_keys: [{hash: %[2]s}]
limits:
  tenants:
    - name: acme
      total_tokens_per_minute: 1000
`

// TestSecurityRequestBody (issue 23 findings 1, 2, 3, 10) sends the
// reported attack bodies through real Envoy. Each is refused with a 400
// naming the limit or field before any backend sees it, and the gateway
// keeps serving. Unpatched, the deep body killed the gateway (and Envoy),
// and every other body reached a backend.
func TestSecurityRequestBody(t *testing.T) {
	g := &authGateway{env: startGateway(t, fmt.Sprintf(bodySecurityConfig, auth.HashKey(bodyKeyAcme), auth.HashKey(bodyKeyGuest)))}
	acme, guest := bearer(bodyKeyAcme), bearer(bodyKeyGuest)
	backendRequests := func() int64 { return g.backendA.Stats().Requests + g.backendB.Stats().Requests }

	t.Run("finding 1: six million open brackets", func(t *testing.T) {
		body := `{"model":"model-a","messages":` + strings.Repeat("[", 6_000_000)
		before := backendRequests()
		msg := openAIErrorMessage(t, g.do(t, http.MethodPost, "/v1/chat/completions", []byte(body), acme), http.StatusBadRequest, "invalid_request")
		assert.Contains(t, msg, "gateway.max_json_depth")
		assert.Contains(t, msg, "128")
		assert.Equal(t, before, backendRequests())
		resp := g.do(t, http.MethodPost, "/v1/chat/completions", []byte(`{"model":"model-a","max_tokens":4,"messages":[{"role":"user","content":"still there?"}]}`), acme)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, "the gateway keeps serving")
	})

	for name, tc := range map[string]struct {
		headers map[string]string
		body    string
		field   string
	}{
		"finding 2: MODEL beside model":        {guest, `{"model":"model-b","MODEL":"model-a","messages":[]}`, `"model"`},
		"finding 2: MAX_TOKENS over the cap":   {guest, `{"model":"model-b","max_tokens":10,"MAX_TOKENS":400,"messages":[]}`, `"max_tokens"`},
		"finding 3: n wrapping max_tokens×n":   {acme, `{"model":"model-a","max_tokens":8,"n":1152921504606846976,"messages":[]}`, "n parameter"},
		"finding 3: cap applies to n":          {guest, `{"model":"model-b","max_tokens":25,"n":3,"messages":[]}`, "n=3"},
		"finding 10: repeated max_tokens":      {acme, `{"model":"shaped","max_tokens":50,"messages":[],"max_tokens":900}`, `"max_tokens"`},
		"finding 10: max_tokens as a string":   {acme, `{"model":"shaped","max_tokens":"5000","messages":[]}`, "max_tokens"},
		"finding 10: max_tokens in upper case": {acme, `{"model":"shaped","Max_Tokens":900,"messages":[]}`, `"max_tokens"`},
	} {
		t.Run(name, func(t *testing.T) {
			before := backendRequests()
			msg := openAIErrorMessage(t, g.do(t, http.MethodPost, "/v1/chat/completions", []byte(tc.body), tc.headers), http.StatusBadRequest, "invalid_request")
			assert.Contains(t, msg, tc.field)
			assert.Equal(t, before, backendRequests(), "nothing reached a backend")
		})
	}

	t.Run("finding 3: max_tokens×n is reserved, not wrapped", func(t *testing.T) {
		// 300×4 output tokens cannot fit acme's 1000 tokens a minute, nor
		// can (2^61+1)×8, which wrapped to 8 unpatched and was admitted.
		for _, body := range []string{
			`{"model":"model-a","max_tokens":300,"n":4,"messages":[]}`,
			`{"model":"model-a","max_tokens":2305843009213693953,"n":8,"messages":[]}`,
		} {
			resp := g.do(t, http.MethodPost, "/v1/chat/completions", []byte(body), acme)
			requireOpenAIError(t, resp, http.StatusTooManyRequests, "rate_limit_exceeded")
		}
		resp := g.do(t, http.MethodPost, "/v1/chat/completions", []byte(`{"model":"model-a","max_tokens":4,"n":2,"messages":[{"role":"user","content":"x"}]}`), acme)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})
}

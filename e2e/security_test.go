package e2e

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/extproc/auth"
)

// securityKey is the API key of the security gateway's tenant.
const securityKey = "sk-e2e-security-7c3e9a1f"

// securityConfig: auth and limits on (the limits tenant header is x-tenant),
// backend-a allows one query parameter, backend-b none.
const securityConfig = listeners + `backends:
  - name: backend-a
    protocol: openai
    endpoints: [{{.BackendA}}]
    query_params: [api-version]
  - name: backend-b
    protocol: openai
    endpoints: [{{.BackendB}}]
models:
  - name: model-a
    backend: backend-a
  - name: model-b
    backend: backend-b
auth:
  tenants:
    - name: acme
      models: ["*"]
      api_keys: [{hash: %s}]
limits:
  tenant_header: x-tenant
  tenants:
    - name: "*"
      requests_per_minute: 100000
`

// securityDo sends a chat request for model through g with the tenant's key,
// tapped as id, and returns the response after checking it is a 200.
func securityDo(t *testing.T, g *env, model, pathAndQuery, id string, headers map[string]string) *http.Response {
	t.Helper()
	h := map[string]string{"authorization": "Bearer " + securityKey, "x-e2e-tap": id}
	for k, v := range headers {
		h[k] = v
	}
	resp := (&authGateway{env: g}).do(t, http.MethodPost, pathAndQuery, chatBody(model, false, "hi"), h)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
	return resp
}

func backendOf(model string) *backend {
	if model == "model-b" {
		return gw.backendB
	}
	return gw.backendA
}

// TestSecurityLowFindings: issue 23 finding 11 (a)-(c) against real Envoy.
func TestSecurityLowFindings(t *testing.T) {
	g := startGateway(t, fmt.Sprintf(securityConfig, auth.HashKey(securityKey)))

	// (a) A client's x-request-id is not trusted: Envoy generates the id
	// the request is logged, traced and sent upstream under.
	t.Run("client request id replaced", func(t *testing.T) {
		id := "sec-request-id"
		resp := securityDo(t, g, "model-a", "/v1/chat/completions", id, map[string]string{"x-request-id": "client-chosen-id"})
		got := resp.Header.Get("x-request-id")
		assert.NotEmpty(t, got)
		assert.NotEqual(t, "client-chosen-id", got, "client id reached the client-facing id")
		up := gw.backendA.tap.requestHeaders(id)
		require.NotNil(t, up)
		assert.Equal(t, []string{got}, up.Values("x-request-id"), "upstream sees the generated id only")
	})

	// (b) With auth on, the unverified limits tenant header is removed; the
	// verified tenant goes upstream in the auth tenant header.
	t.Run("unverified tenant header stripped", func(t *testing.T) {
		for _, model := range []string{"model-a", "model-b"} {
			id := "sec-tenant-" + model
			securityDo(t, g, model, "/v1/chat/completions", id, map[string]string{"x-tenant": "victim"})
			up := backendOf(model).tap.requestHeaders(id)
			require.NotNil(t, up)
			assert.Empty(t, up.Values("x-tenant"), "client's tenant header reached the backend")
			assert.Equal(t, []string{"acme"}, up.Values("x-streamgate-tenant"))
		}
	})

	// (c) Query parameters reach a backend only when its config allows them.
	t.Run("query string filtered per backend", func(t *testing.T) {
		for name, tc := range map[string]struct{ model, in, want string }{
			"none allowed":     {"model-b", "/v1/chat/completions?api-version=1&key=sk-leak", "/v1/chat/completions"},
			"allowed kept":     {"model-a", "/v1/chat/completions?debug=1&api-version=2024-10-21", "/v1/chat/completions?api-version=2024-10-21"},
			"no query at all":  {"model-a", "/v1/chat/completions", "/v1/chat/completions"},
			"only the allowed": {"model-a", "/v1/chat/completions?api-version=3", "/v1/chat/completions?api-version=3"},
		} {
			t.Run(name, func(t *testing.T) {
				id := "sec-query-" + tc.model + "-" + name
				securityDo(t, g, tc.model, tc.in, id, nil)
				assert.Equal(t, tc.want, backendOf(tc.model).tap.requestURI(id))
			})
		}
		assert.NotContains(t, g.logs.String(), "sk-leak", "a query value was logged")
	})
}

// TestSecurityTrustedRequestID: gateway.trust_request_id keeps the id a
// trusted proxy in front of the gateway set.
func TestSecurityTrustedRequestID(t *testing.T) {
	cfg := fmt.Sprintf(securityConfig, auth.HashKey(securityKey))
	cfg = "gateway:\n  trust_request_id: true\n" + cfg[len("gateway:\n"):]
	g := startGateway(t, cfg)
	resp := securityDo(t, g, "model-a", "/v1/chat/completions", "sec-trusted-id", map[string]string{"x-request-id": "proxy-set-id"})
	assert.Equal(t, "proxy-set-id", resp.Header.Get("x-request-id"))
	assert.Equal(t, []string{"proxy-set-id"}, gw.backendA.tap.requestHeaders("sec-trusted-id").Values("x-request-id"))
}

package e2e

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/extproc/auth/authtest"
)

// Secrets of the auth gateway. None may ever appear in a log line.
const (
	e2eKeyAcme   = "sk-e2e-acme-5f1c0b9e7d"
	e2eKeyGuest  = "sk-e2e-guest-8a2d4c6e0f"
	e2eKeyOld    = "sk-e2e-expired-3b5d7f9a1c"
	e2eUpstreamA = "upstream-a-secret-4e6a8c0b2d"
	e2eUpstreamB = "upstream-b-secret-9f1b3d5a7c"
	e2eIssuer    = "https://idp.e2e.test"
)

const authConfig = listeners + `backends:
  - name: backend-a
    protocol: openai
    endpoints: [{{.BackendA}}]
    credential: {header: authorization, env: SG_E2E_UPSTREAM_A}
  - name: backend-b
    protocol: openai
    endpoints: [{{.BackendB}}]
    credential: {header: x-api-key, file: %[1]s}
models:
  - name: model-a
    backend: backend-a
    upstream_model: upstream-a
  - name: model-b
    backend: backend-b
auth:
  tenants:
    - name: acme
      models: ["*"]
      api_keys:
        - {name: main, hash: %[2]s}
        - {name: old, hash: %[3]s, expires: 2020-01-01T00:00:00Z}
    - name: guest
      models: [model-b]
      endpoints: [/v1/chat/completions, /v1/models]
      max_tokens: 50
      api_keys:
        - {hash: %[4]s}
  jwt:
    - issuer: ` + e2eIssuer + `
      jwks_url: %[5]s
      audiences: [streamgate]
      tenant_claim: org
`

// authGateway is a gateway with auth configured, its fake issuer and the
// tokens it minted.
type authGateway struct {
	*env
	idp    *authtest.IdP
	tokens []string // every token minted, for the log scan
}

func startAuthGateway(t *testing.T) *authGateway {
	t.Helper()
	idp := authtest.NewIdP(t)
	idp.AddKey(t, "k1", "RS256")
	t.Setenv("SG_E2E_UPSTREAM_A", e2eUpstreamA)
	keyFile := filepath.Join(t.TempDir(), "backend-b.key")
	require.NoError(t, os.WriteFile(keyFile, []byte(e2eUpstreamB+"\n"), 0o600))
	cfg := fmt.Sprintf(authConfig, keyFile, auth.HashKey(e2eKeyAcme), auth.HashKey(e2eKeyOld), auth.HashKey(e2eKeyGuest), idp.JWKSURL())
	return &authGateway{env: startGateway(t, cfg), idp: idp}
}

func (g *authGateway) token(t *testing.T, kid string, mod func(jwt.MapClaims)) string {
	c := jwt.MapClaims{"iss": e2eIssuer, "aud": "streamgate", "org": "acme", "sub": "alice",
		"iat": time.Now().Add(-time.Minute).Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	if mod != nil {
		mod(c)
	}
	s := g.idp.Sign(t, kid, c)
	g.tokens = append(g.tokens, s)
	return s
}

// do sends a request to the auth gateway; extra adds repeated header values.
func (g *authGateway) do(t *testing.T, method, path string, body []byte, headers map[string]string, extra ...[2]string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, g.gateway+path, bytes.NewReader(body))
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("content-type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	for _, kv := range extra {
		req.Header.Add(kv[0], kv[1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}

func bearer(s string) map[string]string { return map[string]string{"authorization": "Bearer " + s} }

func TestAuth(t *testing.T) {
	g := startAuthGateway(t)

	t.Run("accepted credentials reach the backend as the tenant, never as themselves", func(t *testing.T) {
		for name, tc := range map[string]struct {
			headers         map[string]string
			model, backend  string
			tenant          string
			upHeader, upVal string
		}{
			"bearer key to backend-a": {bearer(e2eKeyAcme), "model-a", "backend-a", "acme", "authorization", "Bearer " + e2eUpstreamA},
			"x-api-key to backend-b":  {map[string]string{"x-api-key": e2eKeyAcme}, "model-b", "backend-b", "acme", "x-api-key", e2eUpstreamB},
			"JWT to backend-a":        {bearer(g.token(t, "k1", nil)), "model-a", "backend-a", "acme", "authorization", "Bearer " + e2eUpstreamA},
			"guest key to backend-b":  {map[string]string{"authorization": "Bearer " + e2eKeyGuest}, "model-b", "backend-b", "guest", "x-api-key", e2eUpstreamB},
		} {
			t.Run(name, func(t *testing.T) {
				id := "auth-" + strings.ReplaceAll(name, " ", "-")
				h := map[string]string{
					"x-e2e-tap":             id,
					"x-streamgate-tenant":   "spoofed-tenant",
					"x-streamgate-backend":  "backend-b",
					"x-streamgate-internal": "spoofed",
				}
				for k, v := range tc.headers {
					h[k] = v
				}
				resp := g.do(t, http.MethodPost, "/v1/chat/completions", chatBody(tc.model, false, "hi"), h,
					[2]string{"x-streamgate-tenant", "second-spoofed-tenant"})
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
				assert.Equal(t, tc.backend, resp.Header.Get("x-fakellm-backend"))
				b := gw.backendA
				if tc.backend == "backend-b" {
					b = gw.backendB
				}
				got := b.tap.requestHeaders(id)
				require.NotNil(t, got, "backend saw the request")
				assert.Equal(t, []string{tc.tenant}, got.Values("x-streamgate-tenant"), "verified tenant only")
				assert.Empty(t, got.Values("x-streamgate-internal"), "spoofed internal header stripped")
				assert.Equal(t, []string{tc.backend}, got.Values("x-streamgate-backend"))
				assert.Equal(t, []string{tc.upVal}, got.Values(tc.upHeader), "gateway's upstream credential injected")
				for k, vs := range got {
					for _, v := range vs {
						for _, secret := range []string{e2eKeyAcme, e2eKeyGuest} {
							assert.NotContains(t, v, secret, "client key reached the backend in %s", k)
						}
						if strings.Count(v, ".") == 2 && strings.HasPrefix(strings.TrimPrefix(v, "Bearer "), "eyJ") {
							t.Errorf("a JWT reached the backend in %s", k)
						}
					}
				}
				if tc.upHeader == "x-api-key" {
					assert.Empty(t, got.Values("authorization"), "client authorization removed")
				} else {
					assert.Empty(t, got.Values("x-api-key"), "client x-api-key removed")
				}
			})
		}
	})

	t.Run("refused requests", func(t *testing.T) {
		for name, tc := range map[string]struct {
			method, path, model string
			headers             map[string]string
			body                []byte
			status              int
			code, message       string
		}{
			"missing credentials":       {status: 401, code: "invalid_api_key", message: "Missing credentials"},
			"wrong key":                 {headers: bearer("sk-e2e-wrong"), status: 401, code: "invalid_api_key", message: "Incorrect"},
			"expired key":               {headers: bearer(e2eKeyOld), status: 401, code: "invalid_api_key", message: "expired"},
			"basic auth":                {headers: map[string]string{"authorization": "Basic dXNlcjpwYXNz"}, status: 401, code: "invalid_api_key", message: "Bearer"},
			"expired JWT":               {headers: bearer(g.token(t, "k1", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() })), status: 401, code: "invalid_api_key", message: "expired"},
			"wrong audience":            {headers: bearer(g.token(t, "k1", func(c jwt.MapClaims) { c["aud"] = "another-service" })), status: 401, code: "invalid_api_key", message: "invalid"},
			"wrong issuer":              {headers: bearer(g.token(t, "k1", func(c jwt.MapClaims) { c["iss"] = "https://evil.test" })), status: 401, code: "invalid_api_key", message: "invalid"},
			"alg none":                  {headers: bearer(g.keep(noneToken(t))), status: 401, code: "invalid_api_key", message: "invalid"},
			"HS256 with the public key": {headers: bearer(g.keep(hmacConfusionToken(t, g.idp))), status: 401, code: "invalid_api_key", message: "invalid"},
			"tampered JWT":              {headers: bearer(g.keep(tamper(g.token(t, "k1", nil)))), status: 401, code: "invalid_api_key", message: "invalid"},
			"JWT of no tenant":          {headers: bearer(g.token(t, "k1", func(c jwt.MapClaims) { c["org"] = "stranger" })), status: 403, code: "permission_denied"},
			"model not allowed":         {headers: bearer(e2eKeyGuest), model: "model-a", status: 403, code: "permission_denied", message: "model-a"},
			"endpoint not allowed":      {headers: bearer(e2eKeyGuest), path: "/v1/embeddings", status: 403, code: "permission_denied"},
			"over max_tokens cap":       {headers: bearer(e2eKeyGuest), model: "model-b", body: []byte(`{"model":"model-b","max_tokens":51,"messages":[]}`), status: 400, code: "invalid_request", message: "limit is 50"},
			"models list needs a key":   {method: http.MethodGet, path: "/v1/models", status: 401, code: "invalid_api_key"},
		} {
			t.Run(name, func(t *testing.T) {
				method, path, model, body := tc.method, tc.path, tc.model, tc.body
				if method == "" {
					method = http.MethodPost
				}
				if path == "" {
					path = "/v1/chat/completions"
				}
				if model == "" {
					model = "model-b"
				}
				if body == nil && method == http.MethodPost {
					body = chatBody(model, false, "hi")
				}
				// Requests counts a request when the backend receives it:
				// earlier subtests' responses may still be finishing
				// (Completed), but their requests have all arrived.
				before := gw.backendA.Stats().Requests + gw.backendB.Stats().Requests
				resp := g.do(t, method, path, body, tc.headers)
				if tc.status == http.StatusUnauthorized {
					assert.Equal(t, `Bearer realm="streamgate"`, resp.Header.Get("www-authenticate"))
				}
				msg := openAIErrorMessage(t, resp, tc.status, tc.code)
				assert.Contains(t, msg, tc.message)
				assert.Equal(t, before, gw.backendA.Stats().Requests+gw.backendB.Stats().Requests, "nothing reached a backend")
			})
		}
	})

	// Issue 24: a refused request's access log line names the tenant and
	// model known when it was refused (the metadata sent with Envoy's
	// immediate response).
	t.Run("refusals are logged with tenant and model", func(t *testing.T) {
		resp := g.do(t, http.MethodPost, "/v1/chat/completions", chatBody("model-a", false, "hi"), bearer(e2eKeyGuest))
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		line := accessLine(t, g.env, resp.Header.Get("x-request-id"))
		assert.Equal(t, "guest", line["tenant"])
		assert.Equal(t, "model-a", line["model"])
		assert.Equal(t, "/v1/chat/completions", line["endpoint"])
		assert.Equal(t, "streamgate_permission_denied", line["details"])
		assert.Nil(t, line["backend"], "refused before routing")
	})

	// Issue 14: the Anthropic API got "The gateway failed to process the
	// request." for an authentication refusal; it carries the same public
	// message as the OpenAI API, in the Anthropic error shape.
	t.Run("Anthropic API refusals keep the message", func(t *testing.T) {
		for name, tc := range map[string]struct {
			headers      map[string]string
			status       int
			typ, message string
		}{
			"missing credentials": {status: 401, typ: "authentication_error", message: "Missing credentials"},
			"wrong key":           {headers: bearer("sk-e2e-wrong"), status: 401, typ: "authentication_error", message: "Incorrect"},
		} {
			t.Run(name, func(t *testing.T) {
				h := map[string]string{"anthropic-version": "2023-06-01"}
				for k, v := range tc.headers {
					h[k] = v
				}
				resp := g.do(t, http.MethodPost, "/v1/messages", []byte(`{"model":"model-b","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`), h)
				defer resp.Body.Close()
				require.Equal(t, tc.status, resp.StatusCode)
				var body struct {
					Type  string `json:"type"`
					Error struct{ Type, Message string }
				}
				require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
				assert.Equal(t, "error", body.Type)
				assert.Equal(t, tc.typ, body.Error.Type)
				assert.Contains(t, body.Error.Message, tc.message)
			})
		}
	})

	t.Run("models list shows what the tenant may use", func(t *testing.T) {
		for key, want := range map[string][]string{e2eKeyAcme: {"model-a", "model-b"}, e2eKeyGuest: {"model-b"}} {
			resp := g.do(t, http.MethodGet, "/v1/models", nil, bearer(key))
			var l struct{ Data []struct{ ID string } }
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&l))
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			var ids []string
			for _, m := range l.Data {
				ids = append(ids, m.ID)
			}
			assert.Equal(t, want, ids)
		}
	})

	t.Run("JWKS key rotation is picked up without restart", func(t *testing.T) {
		g.idp.AddKey(t, "k2", "ES256")
		g.idp.RemoveKey("k1")
		resp := g.do(t, http.MethodPost, "/v1/chat/completions", chatBody("model-b", false, "hi"), bearer(g.token(t, "k2", nil)))
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})

	t.Run("no secret in any log line", func(t *testing.T) {
		logs := g.logs.String()
		require.Contains(t, logs, "request rejected", "the scan needs the rejection logs")
		secrets := append([]string{e2eKeyAcme, e2eKeyGuest, e2eKeyOld, e2eUpstreamA, e2eUpstreamB}, g.tokens...)
		for i, s := range secrets {
			assert.NotContains(t, logs, s, "secret %d appears in the gateway logs", i)
		}
	})
}

func openAIErrorMessage(t *testing.T, resp *http.Response, status int, code string) string {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, status, resp.StatusCode, "body: %s", body)
	require.Contains(t, resp.Header.Get("content-type"), "application/json")
	var e openAIErr
	require.NoError(t, json.Unmarshal(body, &e), "body: %s", body)
	require.NotNil(t, e.Error, "body: %s", body)
	require.Equal(t, code, e.Error.Code)
	require.NotEmpty(t, e.Error.Type)
	return e.Error.Message
}

// keep adds a token made outside g.token to the log scan.
func (g *authGateway) keep(tok string) string {
	g.tokens = append(g.tokens, tok)
	return tok
}

// hmacConfusionToken signs HS256 with the issuer's public key (PEM) as the
// HMAC secret: the classic algorithm-confusion attack.
func hmacConfusionToken(t *testing.T, idp *authtest.IdP) string {
	der, err := x509.MarshalPKIXPublicKey(idp.Public("k1"))
	require.NoError(t, err)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": e2eIssuer, "aud": "streamgate", "org": "acme", "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(pemKey)
	require.NoError(t, err)
	return s
}

func noneToken(t *testing.T) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": e2eIssuer, "aud": "streamgate", "org": "acme", "exp": time.Now().Add(time.Hour).Unix()})
	s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
	require.NoError(t, err)
	return s
}

// tamper changes one character in the middle of a token's signature.
func tamper(tok string) string {
	b := []byte(tok)
	i := len(b) - 10
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

package extproc

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/extproc/auth/authtest"
)

const (
	testKey      = "sk-unit-acme-0123456789"
	testGuestKey = "sk-unit-guest-0123456789"
	testUpstream = "upstream-secret-0123456789"
)

// accessFixture is an auth-configured routing table plus a debug-level log
// that every test scans for secrets.
type accessFixture struct {
	routes *Routes
	auth   *auth.Authenticator
	logs   *bytes.Buffer
	log    *slog.Logger
	idp    *authtest.IdP
}

func newAccessFixture(t *testing.T) *accessFixture {
	t.Helper()
	idp := authtest.NewIdP(t)
	idp.AddKey(t, "k1", "ES256")
	t.Setenv("SG_UNIT_UPSTREAM", testUpstream)
	src := fmt.Sprintf(`backends:
  - name: a
    protocol: openai
    endpoints: [127.0.0.1:1]
    credential: {header: authorization, env: SG_UNIT_UPSTREAM}
  - name: b
    protocol: openai
    endpoints: [127.0.0.1:2]
models:
  - {name: gpt-small, backend: a, upstream_model: small}
  - {name: gpt-large, backend: a}
  - {name: llama, backend: b}
auth:
  tenant_header: x-tenant
  tenants:
    - name: acme
      models: ["*"]
      api_keys: [{hash: %s}]
    - name: guest
      models: ["gpt-small", "nope-*"]
      endpoints: [/v1/chat/completions, /v1/models]
      max_tokens: 100
      api_keys: [{hash: %s}]
  jwt:
    - issuer: https://idp.test
      jwks_url: %s
      audiences: [streamgate]
      tenant_claim: org
`, auth.HashKey(testKey), auth.HashKey(testGuestKey), idp.JWKSURL())
	cfg, err := config.Parse("t.yaml", []byte(src))
	require.NoError(t, err)
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := auth.New(t.Context(), cfg, auth.Options{Log: log})
	require.NoError(t, err)
	f := &accessFixture{routes: NewRoutes(cfg, 1), auth: a, logs: logs, log: log, idp: idp}
	return f
}

func (f *accessFixture) processor(t *testing.T) *processor {
	p := newProcessor(f.routes, 1<<20, f.log, nil)
	p.ctx, p.auth = t.Context(), f.auth
	return p
}

func headersMsg(method, path string, hdrs map[string]string, endOfStream bool) *extprocsvcv3.ProcessingRequest {
	hm := &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: ":method", RawValue: []byte(method)}, {Key: ":path", RawValue: []byte(path)},
	}}
	for k, v := range hdrs {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
	}
	return &extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocsvcv3.HttpHeaders{Headers: hm, EndOfStream: endOfStream},
	}}
}

func bodyMsg(body string) *extprocsvcv3.ProcessingRequest {
	return &extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocsvcv3.HttpBody{Body: []byte(body), EndOfStream: true},
	}}
}

func setHeaders(m *extprocsvcv3.HeaderMutation) map[string]string {
	out := map[string]string{}
	for _, h := range m.GetSetHeaders() {
		out[h.GetHeader().GetKey()] = string(h.GetHeader().GetRawValue())
	}
	return out
}

func TestAccessRequestHeaders(t *testing.T) {
	f := newAccessFixture(t)
	token := f.idp.Sign(t, "k1", jwt.MapClaims{"iss": "https://idp.test", "aud": "streamgate", "org": "acme", "exp": time.Now().Add(time.Hour).Unix()})
	expired := f.idp.Sign(t, "k1", jwt.MapClaims{"iss": "https://idp.test", "aud": "streamgate", "org": "acme", "exp": time.Now().Add(-time.Hour).Unix()})
	for name, tc := range map[string]struct {
		method, path string
		hdrs         map[string]string
		status       int    // 0: passed on to the body phase
		code         string // OpenAI error code
		tenant       string
	}{
		"bearer key":              {method: "POST", path: "/v1/chat/completions", hdrs: map[string]string{"authorization": "Bearer " + testKey}, tenant: "acme"},
		"x-api-key":               {method: "POST", path: "/v1/chat/completions", hdrs: map[string]string{"x-api-key": testKey}, tenant: "acme"},
		"jwt":                     {method: "POST", path: "/v1/chat/completions", hdrs: map[string]string{"authorization": "Bearer " + token}, tenant: "acme"},
		"missing":                 {method: "POST", path: "/v1/chat/completions", status: 401, code: "invalid_api_key"},
		"wrong key":               {method: "POST", path: "/v1/chat/completions", hdrs: map[string]string{"authorization": "Bearer sk-wrong"}, status: 401, code: "invalid_api_key"},
		"expired jwt":             {method: "POST", path: "/v1/chat/completions", hdrs: map[string]string{"authorization": "Bearer " + expired}, status: 401, code: "invalid_api_key"},
		"models needs auth":       {method: "GET", path: "/v1/models", status: 401, code: "invalid_api_key"},
		"unknown path needs auth": {method: "GET", path: "/admin", status: 401, code: "invalid_api_key"},
		"endpoint denied":         {method: "POST", path: "/v1/embeddings", hdrs: map[string]string{"x-api-key": testGuestKey}, status: 403, code: "permission_denied", tenant: "guest"},
		"unknown path authed":     {method: "GET", path: "/admin", hdrs: map[string]string{"x-api-key": testGuestKey}, status: 404, code: "unknown_url", tenant: "guest"},
	} {
		t.Run(name, func(t *testing.T) {
			p := f.processor(t)
			resp := p.handle(headersMsg(tc.method, tc.path, tc.hdrs, tc.method == "GET"))
			assert.Equal(t, tc.tenant, p.Tenant)
			if tc.status != 0 {
				ir := resp.GetImmediateResponse()
				require.NotNil(t, ir, "want an immediate response")
				assert.Equal(t, tc.status, int(ir.GetStatus().GetCode()))
				assert.Equal(t, tc.code, gjson.GetBytes(ir.GetBody(), "error.code").Str)
				assert.NotEmpty(t, gjson.GetBytes(ir.GetBody(), "error.message").Str)
				wa := setHeaders(ir.GetHeaders())["www-authenticate"]
				if tc.status == http.StatusUnauthorized {
					assert.Equal(t, `Bearer realm="streamgate"`, wa)
				} else {
					assert.Empty(t, wa)
				}
				return
			}
			m := resp.GetRequestHeaders().GetResponse().GetHeaderMutation()
			require.NotNil(t, m)
			assert.Subset(t, m.GetRemoveHeaders(), []string{"authorization", "x-api-key"}, "client credentials never reach a backend")
			assert.Equal(t, tc.tenant, setHeaders(m)["x-tenant"])
		})
	}
	assertNoSecrets(t, f.logs.String(), testKey, testGuestKey, token, expired, testUpstream)
}

func TestAccessSpoofedTenantHeaderIsReplaced(t *testing.T) {
	f := newAccessFixture(t)
	p := f.processor(t)
	resp := p.handle(headersMsg("POST", "/v1/chat/completions", map[string]string{
		"x-api-key": testGuestKey, "x-tenant": "acme", "x-streamgate-tenant": "acme",
	}, false))
	m := resp.GetRequestHeaders().GetResponse().GetHeaderMutation()
	assert.Equal(t, "guest", setHeaders(m)["x-tenant"])
	assert.NotContains(t, m.GetRemoveHeaders(), "x-tenant", "set, not removed and set")
	assert.Contains(t, m.GetRemoveHeaders(), "x-streamgate-tenant")
}

func TestAccessRequestBody(t *testing.T) {
	f := newAccessFixture(t)
	for name, tc := range map[string]struct {
		key, body string
		status    int
		backend   string
		wantBody  string // "" means the body is not rewritten
		upstream  bool
	}{
		"allowed model, upstream credential injected": {key: testKey, body: `{"model":"gpt-large","max_tokens":5000}`, backend: "a", upstream: true},
		"backend without credential":                  {key: testKey, body: `{"model":"llama"}`, backend: "b"},
		"model renamed and capped":                    {key: testGuestKey, body: `{"model":"gpt-small"}`, backend: "a", wantBody: `{"model":"small","max_tokens":100}`, upstream: true},
		"model denied":                                {key: testGuestKey, body: `{"model":"llama"}`, status: 403},
		"denied before existence is checked":          {key: testGuestKey, body: `{"model":"secret-model"}`, status: 403},
		"allowed glob, model missing":                 {key: testGuestKey, body: `{"model":"nope-1"}`, status: 404},
		"over the cap":                                {key: testGuestKey, body: `{"model":"gpt-small","max_tokens":101}`, status: 400},
	} {
		t.Run(name, func(t *testing.T) {
			p := f.processor(t)
			require.Nil(t, p.handle(headersMsg("POST", "/v1/chat/completions", map[string]string{"x-api-key": tc.key}, false)).GetImmediateResponse())
			resp := p.handle(bodyMsg(tc.body))
			if tc.status != 0 {
				require.NotNil(t, resp.GetImmediateResponse())
				assert.Equal(t, tc.status, int(resp.GetImmediateResponse().GetStatus().GetCode()))
				return
			}
			common := resp.GetRequestBody().GetResponse()
			set := setHeaders(common.GetHeaderMutation())
			assert.Equal(t, tc.backend, set["x-streamgate-backend"])
			if tc.upstream {
				assert.Equal(t, "Bearer "+testUpstream, set["authorization"])
			} else {
				assert.NotContains(t, set, "authorization")
			}
			if tc.wantBody != "" {
				assert.JSONEq(t, tc.wantBody, string(common.GetBodyMutation().GetBody()))
				assert.Equal(t, fmt.Sprint(len(common.GetBodyMutation().GetBody())), set["content-length"])
			} else {
				assert.Nil(t, common.GetBodyMutation())
			}
		})
	}
	assertNoSecrets(t, f.logs.String(), testKey, testGuestKey, testUpstream)
}

func TestAccessModelListPerTenant(t *testing.T) {
	f := newAccessFixture(t)
	list := func(key string) []string {
		p := f.processor(t)
		ir := p.handle(headersMsg("GET", "/v1/models", map[string]string{"authorization": "Bearer " + key}, true)).GetImmediateResponse()
		require.NotNil(t, ir)
		require.Equal(t, 200, int(ir.GetStatus().GetCode()))
		var ids []string
		for _, m := range gjson.GetBytes(ir.GetBody(), "data.#.id").Array() {
			ids = append(ids, m.Str)
		}
		return ids
	}
	assert.Equal(t, []string{"gpt-small", "gpt-large", "llama"}, list(testKey))
	assert.Equal(t, []string{"gpt-small"}, list(testGuestKey))
}

func TestOpenGatewayPassesCredentialsThrough(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte("backends:\n  - name: a\n    protocol: openai\n    endpoints: [127.0.0.1:1]\nmodels:\n  - {name: m, backend: a}\n"))
	require.NoError(t, err)
	a, err := auth.New(t.Context(), cfg, auth.Options{})
	require.NoError(t, err)
	p := newProcessor(NewRoutes(cfg, 1), 1<<20, slog.New(slog.DiscardHandler), nil)
	p.ctx, p.auth = t.Context(), a
	resp := p.handle(headersMsg("POST", "/v1/chat/completions", map[string]string{"authorization": "Bearer anything"}, false))
	require.Nil(t, resp.GetImmediateResponse())
	assert.Nil(t, resp.GetRequestHeaders().GetResponse(), "no auth configured: nothing removed or added")
	assert.Empty(t, p.Tenant)
}

// assertNoSecrets fails when any secret appears in the captured logs.
func assertNoSecrets(t *testing.T, logs string, secrets ...string) {
	t.Helper()
	require.NotEmpty(t, logs, "the scan needs log lines to scan")
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("a secret (%d bytes, starting %q) appears in the logs", len(s), s[:6])
		}
	}
}

package extproc

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/extproc/auth/authtest"
	"github.com/streamgate/streamgate/extproc/ratelimit"
)

const (
	svcKeyAcme = "sk-unit-svc-acme-0123456789"
	svcKeyRO   = "sk-unit-svc-ro-0123456789"
)

// newServiceFixture: a vector store on /vec/ (rewritten to /) whose
// collections are scoped by tenant; acme may do everything, ro only read.
func newServiceFixture(t testing.TB, limits string) (*Routes, *auth.Authenticator, *Limits) {
	routes, a, l, _ := newServiceFixtureIdP(t, limits)
	return routes, a, l
}

// newServiceFixtureIdP is newServiceFixture with a JWT issuer whose "org"
// claim names the tenant.
func newServiceFixtureIdP(t testing.TB, limits string) (*Routes, *auth.Authenticator, *Limits, *authtest.IdP) {
	t.Helper()
	idp := authtest.NewIdP(t)
	idp.AddKey(t, "k1", "ES256")
	t.Setenv("SG_UNIT_VEC", "vec-secret-0123456789")
	cfg, err := config.Parse("t.yaml", []byte(fmt.Sprintf(`backends:
  - name: vec
    protocol: http
    endpoints: [127.0.0.1:1]
    credential: {header: authorization, env: SG_UNIT_VEC}
services:
  - name: vec
    backend: vec
    path_prefix: /vec/
    rewrite: /
    operations:
      - {name: health, methods: [GET], paths: [/health]}
      - {name: read, methods: [GET], paths: ["/t/{tenant}/c/*"]}
      - {name: create, methods: [POST], paths: ["/t/{tenant}/c"], body: {field: name, match: "{tenant}-*"}}
      - {name: write, methods: [POST, DELETE], paths: ["/t/{tenant}/c/*/**"]}
auth:
  tenants:
    - name: acme
      services: [{name: vec, operations: ["*"]}]
      api_keys: [{hash: %s}]
    - name: ro
      services: [{name: vec, operations: [health, read]}]
      api_keys: [{hash: %s}]
  jwt:
    - {issuer: https://idp.test, jwks_url: %s, audiences: [streamgate], tenant_claim: org}
%s`, auth.HashKey(svcKeyAcme), auth.HashKey(svcKeyRO), idp.JWKSURL(), limits)))
	require.NoError(t, err)
	a, err := auth.New(t.Context(), cfg, auth.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	var l *Limits
	if cfg.Limits != nil {
		l, err = NewLimits(cfg, ratelimit.NewMemoryStore(ratelimit.SystemClock{}), prometheus.NewRegistry())
		require.NoError(t, err)
	}
	return NewRoutes(cfg, 1), a, l, idp
}

// TestServiceJWT: a JWT's tenant gets the same grants and scope as an API key's.
func TestServiceJWT(t *testing.T) {
	routes, a, _, idp := newServiceFixtureIdP(t, "")
	token := func(org string) map[string]string {
		tok := idp.Sign(t, "k1", jwt.MapClaims{"iss": "https://idp.test", "aud": "streamgate", "org": org, "exp": time.Now().Add(time.Hour).Unix()})
		return map[string]string{"authorization": "Bearer " + tok}
	}
	for name, tc := range map[string]struct {
		method, path, org string
		status            int
	}{
		"read own":     {"GET", "/vec/t/ro/c/x", "ro", 0},
		"write denied": {"POST", "/vec/t/ro/c/1/add", "ro", http.StatusForbidden},
		"other tenant": {"GET", "/vec/t/ro/c/x", "acme", http.StatusForbidden},
		"write own":    {"POST", "/vec/t/acme/c/1/add", "acme", 0},
	} {
		t.Run(name, func(t *testing.T) {
			p := newProcessor(routes, 1<<20, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			p.ctx, p.auth = t.Context(), a
			resp := p.handle(headersMsg(tc.method, tc.path, token(tc.org), false))
			if tc.status == 0 {
				require.NotNil(t, resp.GetRequestHeaders(), "%v", resp)
				assert.Equal(t, tc.org, setHeaders(resp.GetRequestHeaders().GetResponse().GetHeaderMutation())[config.DefaultTenantHeader])
				return
			}
			assert.EqualValues(t, tc.status, resp.GetImmediateResponse().GetStatus().GetCode(), "%v", resp)
		})
	}
}

func TestServiceRequestHeaders(t *testing.T) {
	routes, a, _ := newServiceFixture(t, "")
	bearer := func(k string) map[string]string { return map[string]string{"authorization": "Bearer " + k} }
	for name, tc := range map[string]struct {
		method, path string
		hdrs         map[string]string
		status       int    // 0: passed on
		code         string // the refusal's code
		op           string
		body         bool // the body is asked for
	}{
		"health":             {method: "GET", path: "/vec/health", hdrs: bearer(svcKeyRO), op: "health"},
		"read own":           {method: "GET", path: "/vec/t/ro/c/x?limit=3", hdrs: bearer(svcKeyRO), op: "read"},
		"read escaped":       {method: "GET", path: "/vec/t/r%6F/c/x", hdrs: bearer(svcKeyRO), op: "read"},
		"create":             {method: "POST", path: "/vec/t/acme/c", hdrs: bearer(svcKeyAcme), op: "create", body: true},
		"write":              {method: "POST", path: "/vec/t/acme/c/1/add", hdrs: bearer(svcKeyAcme), op: "write"},
		"no key":             {method: "GET", path: "/vec/health", status: http.StatusUnauthorized, code: "invalid_api_key"},
		"write denied":       {method: "POST", path: "/vec/t/ro/c/1/add", hdrs: bearer(svcKeyRO), status: http.StatusForbidden, code: "permission_denied"},
		"other tenant":       {method: "GET", path: "/vec/t/acme/c/x", hdrs: bearer(svcKeyRO), status: http.StatusForbidden, code: "out_of_scope"},
		"other tenant write": {method: "DELETE", path: "/vec/t/ro/c/1/x", hdrs: bearer(svcKeyAcme), status: http.StatusForbidden, code: "out_of_scope"},
		"no operation":       {method: "PUT", path: "/vec/t/ro/c/x", hdrs: bearer(svcKeyRO), status: http.StatusNotFound, code: "unknown_operation"},
		"dot segment":        {method: "GET", path: "/vec/t/ro/c/../../acme/c/x", hdrs: bearer(svcKeyRO), status: http.StatusBadRequest, code: "invalid_path"},
		"encoded slash":      {method: "GET", path: "/vec/t/ro/c/a%2Fb", hdrs: bearer(svcKeyRO), status: http.StatusBadRequest, code: "invalid_path"},
		"empty segment":      {method: "GET", path: "/vec/t//c/x", hdrs: bearer(svcKeyRO), status: http.StatusBadRequest, code: "invalid_path"},
		"bad escape":         {method: "GET", path: "/vec/t/ro/c/%zz", hdrs: bearer(svcKeyRO), status: http.StatusBadRequest, code: "invalid_path"},
	} {
		t.Run(name, func(t *testing.T) {
			p := newProcessor(routes, 1<<20, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			p.ctx, p.auth = t.Context(), a
			resp := p.handle(headersMsg(tc.method, tc.path, tc.hdrs, false))
			all, _ := json.Marshal(resp.String())
			assert.NotContains(t, string(all), svcKeyAcme, "the client's key goes nowhere")
			assert.NotContains(t, string(all), svcKeyRO)
			if tc.status != 0 {
				ir := resp.GetImmediateResponse()
				require.NotNil(t, ir, "want a refusal, got %v", resp)
				assert.EqualValues(t, tc.status, ir.GetStatus().GetCode())
				assert.Equal(t, "streamgate_"+tc.code, ir.GetDetails())
				return
			}
			hr := resp.GetRequestHeaders()
			require.NotNil(t, hr, "want the headers passed on, got %v", resp)
			m := hr.GetResponse().GetHeaderMutation()
			set := setHeaders(m)
			assert.Equal(t, "Bearer vec-secret-0123456789", set["authorization"], "the service's own credential")
			assert.NotEmpty(t, set[config.DefaultTenantHeader], "the verified tenant goes upstream")
			assert.NotContains(t, set, ":path", "Envoy's route rewrites the prefix")
			assert.False(t, hr.GetResponse().GetClearRouteCache(), "the route Envoy matched by prefix stays")
			md := resp.GetDynamicMetadata().GetFields()[contract.MetadataNamespace].GetStructValue().GetFields()
			assert.Equal(t, "vec", md[contract.MetaService].GetStringValue())
			assert.Equal(t, tc.op, md[contract.MetaOperation].GetStringValue())
			if tc.body {
				assert.Equal(t, extprocv3.ProcessingMode_BUFFERED, resp.GetModeOverride().GetRequestBodyMode())
			} else {
				assert.Nil(t, resp.GetModeOverride(), "the route's mode (headers only) stays")
			}
		})
	}
}

func TestServiceBodyRule(t *testing.T) {
	routes, a, _ := newServiceFixture(t, "")
	for name, tc := range map[string]struct {
		body   string
		status int
	}{
		"own name":     {`{"name":"acme-docs","metadata":{}}`, 0},
		"other name":   {`{"name":"ro-docs"}`, http.StatusForbidden},
		"no name":      {`{"metadata":{}}`, http.StatusForbidden},
		"name number":  {`{"name":7}`, http.StatusForbidden},
		"not JSON":     {`{"name":`, http.StatusBadRequest},
		"escaped name": {`{"name":"ro\u002ddocs"}`, http.StatusForbidden},
	} {
		t.Run(name, func(t *testing.T) {
			p := newProcessor(routes, 1<<20, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			p.ctx, p.auth = t.Context(), a
			require.NotNil(t, p.handle(headersMsg("POST", "/vec/t/acme/c", map[string]string{"x-api-key": svcKeyAcme}, false)).GetRequestHeaders())
			resp := p.handle(bodyMsg(tc.body))
			if tc.status == 0 {
				require.NotNil(t, resp.GetRequestBody(), "%v", resp)
				assert.Nil(t, resp.GetRequestBody().GetResponse().GetBodyMutation(), "the body passes unchanged")
				assert.True(t, p.done(resp), "nothing more to process")
				return
			}
			assert.EqualValues(t, tc.status, resp.GetImmediateResponse().GetStatus().GetCode(), "%v", resp)
		})
	}
}

func TestServiceLimits(t *testing.T) {
	routes, a, l := newServiceFixture(t, `limits:
  queue: {max_wait: 10ms}
  tenants:
    - name: acme
      requests_per_minute: 1   # model limits do not count service requests
      services: [{name: vec, requests_per_minute: 3, request_bytes_per_minute: 100, concurrent_requests: 1}]
`)
	start := func(cl string) (*processor, int) {
		p := newProcessor(routes, 1<<20, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
		p.ctx, p.auth, p.limits = t.Context(), a, l
		h := map[string]string{"x-api-key": svcKeyAcme}
		if cl != "" {
			h["content-length"] = cl
		}
		resp := p.handle(headersMsg("POST", "/vec/t/acme/c/1/add", h, false))
		if ir := resp.GetImmediateResponse(); ir != nil {
			p.finish()
			return p, int(ir.GetStatus().GetCode())
		}
		assert.Equal(t, extprocv3.ProcessingMode_SEND, resp.GetModeOverride().GetResponseTrailerMode(), "the slot is held until the response ends")
		return p, 0
	}
	p1, status := start("10")
	require.Zero(t, status)
	_, status = start("10")
	assert.Equal(t, http.StatusTooManyRequests, status, "one request at a time")
	p1.finish() // the response ended: Envoy closed the ext_proc stream
	_, status = start("200")
	assert.Equal(t, http.StatusTooManyRequests, status, "more bytes than the tenant's per-minute budget")
	p3, status := start("10")
	require.Zero(t, status, "model limits (1 rpm) do not count service requests")
	p3.finish()
	p4, status := start("10")
	require.Zero(t, status, "refused requests were not charged: this is the third")
	p4.finish()
	_, status = start("10")
	assert.Equal(t, http.StatusTooManyRequests, status, "three requests per minute")
}

func TestSplitServicePath(t *testing.T) {
	segs, err := splitServicePath("/a/b%20c/d/")
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b c", "d", ""}, segs)
	for _, bad := range []string{"a/b", "/a//b", "/a/./b", "/a/../b", "/a/%2e%2E/b", "/a/%2F", "/a/%5c", "/a/%"} {
		_, err := splitServicePath(bad)
		assert.ErrorIs(t, err, ErrServicePath, bad)
	}
}

// FuzzSplitServicePath: whatever the path, the segments it accepts hold no
// separator and no dot segment, and only the last may be empty.
func FuzzSplitServicePath(f *testing.F) {
	for _, s := range []string{"/a/b", "/a/%2e%2e/b", "/a/b%2Fc", "/", "//", "/a/%zz", "/t/acme/c/x?y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		segs, err := splitServicePath(p)
		if err != nil {
			return
		}
		for i, s := range segs {
			if strings.ContainsAny(s, "/\\") || s == "." || s == ".." || (s == "" && i != len(segs)-1) {
				t.Fatalf("%q: segment %d %q accepted", p, i, s)
			}
		}
	})
}

// BenchmarkServiceRequest is a service request's whole ext_proc work
// without gRPC: the request headers (API key, operation, scope, limits),
// then the stream's end releasing its slot. Model requests pay one prefix
// check per service more.
func BenchmarkServiceRequest(b *testing.B) {
	routes, a, l := newServiceFixture(b, `limits:
  tenants:
    - name: acme
      services: [{name: vec, requests_per_minute: 1000000000, concurrent_requests: 1000}]
`)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	headers := headersMsg("POST", "/vec/t/acme/c/123e4567-e89b-12d3-a456-426614174000/add", map[string]string{"authorization": "Bearer " + svcKeyAcme, "content-length": "1024"}, false)
	b.ReportAllocs()
	for b.Loop() {
		p := newProcessor(routes, 1<<20, log, nil)
		p.auth, p.limits = a, l
		if r := p.handle(headers); r.GetRequestHeaders() == nil {
			b.Fatalf("headers answered %v", r)
		}
		p.finish()
	}
}

// TestServiceGRPCRefusals: a gRPC call to a service is refused with a
// gRPC status, never an HTTP JSON error.
func TestServiceGRPCRefusals(t *testing.T) {
	routes, a, _ := newServiceFixture(t, "")
	for name, tc := range map[string]struct {
		path, key string
		code      uint32
	}{
		"no key":       {"/vec/health", "", 16},
		"not granted":  {"/vec/t/ro/c/1/add", svcKeyRO, 7},
		"out of scope": {"/vec/t/acme/c/1/add", svcKeyRO, 7},
		"no operation": {"/vec/other", svcKeyRO, 12},
	} {
		t.Run(name, func(t *testing.T) {
			p := newProcessor(routes, 1<<20, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			p.ctx, p.auth = t.Context(), a
			h := map[string]string{"content-type": "application/grpc"}
			if tc.key != "" {
				h["authorization"] = "Bearer " + tc.key
			}
			method := "POST"
			if name == "no key" {
				method = "GET"
			}
			ir := p.handle(headersMsg(method, tc.path, h, false)).GetImmediateResponse()
			require.NotNil(t, ir)
			assert.Equal(t, tc.code, ir.GetGrpcStatus().GetStatus())
			assert.EqualValues(t, http.StatusOK, ir.GetStatus().GetCode(), "trailers-only gRPC answer")
		})
	}
}

// TestServiceGRPCSchemelessKey: on a gRPC service call the key may come as
// pymilvus sends its token, base64 without a scheme; the header is removed
// before the call goes on. An HTTP request is held to the Bearer scheme.
func TestServiceGRPCSchemelessKey(t *testing.T) {
	routes, a, _ := newServiceFixture(t, "")
	enc := base64.StdEncoding.EncodeToString([]byte(svcKeyRO))
	for name, ct := range map[string]string{"grpc": "application/grpc", "http": "application/json"} {
		t.Run(name, func(t *testing.T) {
			p := newProcessor(routes, 1<<20, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			p.ctx, p.auth = t.Context(), a
			r := p.handle(headersMsg("GET", "/vec/health", map[string]string{"content-type": ct, "authorization": enc}, false))
			if ct == "application/json" {
				ir := r.GetImmediateResponse()
				require.NotNil(t, ir, "a scheme-less HTTP credential is refused")
				assert.EqualValues(t, http.StatusUnauthorized, ir.GetStatus().GetCode())
				return
			}
			hr := r.GetRequestHeaders()
			require.NotNil(t, hr, "%v", r)
			// The fixture's backend has its own credential in authorization:
			// the client's value is overwritten, never passed on.
			m := hr.GetResponse().GetHeaderMutation()
			var set []string
			for _, h := range m.GetSetHeaders() {
				if h.GetHeader().GetKey() == "authorization" {
					set = append(set, string(h.GetHeader().GetRawValue())+h.GetHeader().GetValue())
				}
			}
			require.Len(t, set, 1)
			assert.NotContains(t, set[0], enc)
			assert.NotContains(t, set[0], svcKeyRO)
			assert.Equal(t, "ro", p.Tenant)
		})
	}
}

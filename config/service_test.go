package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const serviceBase = `backends:
  - name: chroma
    protocol: http
    endpoints: [127.0.0.1:8000]
  - name: vllm
    protocol: openai
    endpoints: [127.0.0.1:8001]
`

func TestServiceValid(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte(serviceBase+`services:
  - name: chroma
    backend: chroma
    path_prefix: /chroma/
    rewrite: /
  - name: other
    backend: chroma
    path_prefix: /api/v2/
    operations:
      - {name: read, methods: [GET], paths: ["/api/v2/tenants/{tenant}/**"], body: {field: name, match: "{tenant}-*"}}
auth:
  tenants:
    - name: acme
      services: [{name: chroma, operations: ["*"]}]
      api_keys: [{hash: sha256:919233ecc5ef92f8696bd8c1a57883cf15d44f2d36b106ea29fbc5b3bbe69510}]
limits:
  tenants:
    - name: acme
      services: [{name: chroma, requests_per_minute: 5, request_bytes_per_minute: 100, concurrent_requests: 2}]
`))
	require.NoError(t, err)
	s := cfg.Service("chroma")
	require.NotNil(t, s)
	require.Len(t, s.Operations, 1, "no operations: one that matches everything")
	assert.Equal(t, OperationAny, s.Operations[0].Name)
	assert.Equal(t, "/api/v2/heartbeat", s.UpstreamPath("/chroma/api/v2/heartbeat"))
	assert.Equal(t, "/api/v2/x", cfg.Service("other").UpstreamPath("/api/v2/x"), "no rewrite keeps the path")
	assert.Nil(t, cfg.Service("nope"))
}

func TestServiceInvalid(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"unknown backend": {`services: [{name: s, backend: nope, path_prefix: /s/}]`, `backend "nope" is not defined`},
		"model backend":   {`services: [{name: s, backend: vllm, path_prefix: /s/}]`, `services need protocol http`},
		"prefix no slash": {`services: [{name: s, backend: chroma, path_prefix: /s}]`, `must be a path starting and ending with '/'`},
		"root prefix":     {`services: [{name: s, backend: chroma, path_prefix: /}]`, `not the root alone`},
		"dot prefix":      {`services: [{name: s, backend: chroma, path_prefix: /a/../}]`, `must be a path`},
		"model API":       {`services: [{name: s, backend: chroma, path_prefix: /v1/x/}]`, `overlaps /v1/`},
		"overlap":         {"services: [{name: s, backend: chroma, path_prefix: /a/}, {name: t, backend: chroma, path_prefix: /a/b/}]", `overlaps service "s"`},
		"duplicate":       {"services: [{name: s, backend: chroma, path_prefix: /a/}, {name: s, backend: chroma, path_prefix: /b/}]", `already used`},
		"bad rewrite":     {`services: [{name: s, backend: chroma, path_prefix: /s/, rewrite: x}]`, `rewrite "x"`},
		"bad method":      {`services: [{name: s, backend: chroma, path_prefix: /s/, operations: [{name: r, methods: [get], paths: [/a]}]}]`, `method "get"`},
		"no paths":        {`services: [{name: s, backend: chroma, path_prefix: /s/, operations: [{name: r}]}]`, `lists no paths`},
		"relative path":   {`services: [{name: s, backend: chroma, path_prefix: /s/, operations: [{name: r, paths: [a/b]}]}]`, `must start with '/'`},
		"inner **":        {`services: [{name: s, backend: chroma, path_prefix: /s/, operations: [{name: r, paths: ["/**/a"]}]}]`, `may only be the last`},
		"bad glob":        {`services: [{name: s, backend: chroma, path_prefix: /s/, operations: [{name: r, paths: ["/a["]}]}]`, `not a valid glob`},
		"bad placeholder": {`services: [{name: s, backend: chroma, path_prefix: /s/, operations: [{name: r, paths: ["/{user}"]}]}]`, `may hold only {tenant}`},
		"duplicate op":    {`services: [{name: s, backend: chroma, path_prefix: /s/, operations: [{name: r, paths: [/a]}, {name: r, paths: [/b]}]}]`, `listed twice`},
		"body no field":   {`services: [{name: s, backend: chroma, path_prefix: /s/, operations: [{name: r, paths: [/a], body: {match: x}}]}]`, `body.field`},
		"model on http":   {"services: [{name: s, backend: chroma, path_prefix: /s/}]\nmodels: [{name: m, backend: chroma}]", `serves services only`},
		"grant unknown": {`services: [{name: s, backend: chroma, path_prefix: /s/}]
auth: {tenants: [{name: a, services: [{name: nope, operations: ["*"]}], api_keys: [{hash: sha256:919233ecc5ef92f8696bd8c1a57883cf15d44f2d36b106ea29fbc5b3bbe69510}]}]}`, `service "nope" is not defined`},
		"grant nothing": {`services: [{name: s, backend: chroma, path_prefix: /s/}]
auth: {tenants: [{name: a, services: [{name: s}], api_keys: [{hash: sha256:919233ecc5ef92f8696bd8c1a57883cf15d44f2d36b106ea29fbc5b3bbe69510}]}]}`, `grants no operations`},
		"limit unknown": {`services: [{name: s, backend: chroma, path_prefix: /s/}]
limits: {tenants: [{name: a, services: [{name: nope}]}]}`, `no such service`},
		"limit negative": {`services: [{name: s, backend: chroma, path_prefix: /s/}]
limits: {tenants: [{name: a, services: [{name: s, concurrent_requests: -1}]}]}`, `must not be negative`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(serviceBase+tc.yaml+"\n"))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestPathPattern(t *testing.T) {
	for name, tc := range map[string]struct {
		pattern, path, tenant string
		want                  bool
	}{
		"literal":                 {"/api/v2/heartbeat", "/api/v2/heartbeat", "", true},
		"literal other":           {"/api/v2/heartbeat", "/api/v2/version", "", false},
		"longer path":             {"/api/v2", "/api/v2/x", "", false},
		"star one segment":        {"/a/*/c", "/a/b/c", "", true},
		"star not two":            {"/a/*/c", "/a/b/x/c", "", false},
		"rest":                    {"/a/**", "/a/b/c/d", "", true},
		"rest empty":              {"/a/**", "/a", "", true},
		"tenant any":              {"/t/{tenant}/x", "/t/beta/x", "", true},
		"tenant own":              {"/t/{tenant}/x", "/t/acme/x", "acme", true},
		"tenant other":            {"/t/{tenant}/x", "/t/beta/x", "acme", false},
		"tenant prefix":           {"/c/{tenant}-*", "/c/acme-docs", "acme", true},
		"tenant prefix other":     {"/c/{tenant}-*", "/c/acmex-docs", "acme", false},
		"tenant prefix lookalike": {"/c/{tenant}-*", "/c/acme", "acme", false},
		"glob in segment":         {"/c/doc?", "/c/docs", "", true},
		"trailing slash":          {"/a/b", "/a/b/", "", false},
	} {
		t.Run(name, func(t *testing.T) {
			p, err := ParsePathPattern(tc.pattern)
			require.NoError(t, err)
			segs := strings.Split(tc.path[1:], "/")
			assert.Equal(t, tc.want, p.Match(segs, tc.tenant))
		})
	}
}

// FuzzPathPattern: any pattern either fails to parse or matches without
// panicking, and a pattern without {tenant} matches the same for every tenant.
func FuzzPathPattern(f *testing.F) {
	for _, s := range [][2]string{{"/a/*/c", "/a/b/c"}, {"/t/{tenant}/**", "/t/acme/x"}, {"/c/{tenant}-*", "/c/acme-1"}, {"/[", "/x"}, {"/**", "/"}} {
		f.Add(s[0], s[1], "acme")
	}
	f.Fuzz(func(t *testing.T, pattern, path, tenant string) {
		p, err := ParsePathPattern(pattern)
		if err != nil {
			return
		}
		segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
		got := p.Match(segs, tenant)
		if !p.Scoped() && got != p.Match(segs, "") {
			t.Fatalf("%q on %q: unscoped pattern depends on the tenant", pattern, path)
		}
		if got && !p.Match(segs, "") {
			t.Fatalf("%q on %q: matches for tenant %q but not for any tenant", pattern, path, tenant)
		}
	})
}

func TestServiceBackendTakesNoModelKnobs(t *testing.T) {
	_, err := Parse("t.yaml", []byte(`backends:
  - name: chroma
    protocol: http
    endpoints: [127.0.0.1:8000]
    query_params: [x]
services: [{name: s, backend: chroma, path_prefix: /s/}]
`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "picking and query_params do not apply")
}

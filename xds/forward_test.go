package xds

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

// TestForwardRulesFollowTheConfig: the main filter forwards the headers
// ext_proc reads whatever the config, the limits tenant header only with
// limits, the trace context only with tracing, and every x-streamgate-*
// header (ext_proc removes those on sight).
func TestForwardRulesFollowTheConfig(t *testing.T) {
	const backends = "backends: [{name: a, protocol: openai, endpoints: [\"127.0.0.1:1\"]}]\n"
	always := []string{":method", ":path", "content-length", "content-type", "x-request-id", "authorization", "x-api-key", "upgrade", "sec-websocket-protocol", ":status"}
	tests := map[string]struct {
		extra string
		want  []string
		not   []string
	}{
		"plain":             {"", always, []string{"x-tenant", "traceparent", "tracestate", "user-agent", ":authority"}},
		"limits":            {"limits: {tenants: [{name: \"*\", requests_per_minute: 10}]}\n", append(always, "x-tenant"), []string{"traceparent"}},
		"own tenant header": {"limits: {tenant_header: x-team, tenants: [{name: \"*\", requests_per_minute: 10}]}\n", append(always, "x-team"), []string{"x-tenant"}},
		"tracing":           {"telemetry: {tracing: {endpoint: \"127.0.0.1:4317\", insecure: true}}\n", append(always, "traceparent", "tracestate"), []string{"x-tenant"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg, err := config.Parse("t.yaml", []byte(backends+tc.extra))
			require.NoError(t, err)
			var exact, prefix []string
			for _, p := range forwardRules(cfg).GetAllowedHeaders().GetPatterns() {
				if e := p.GetExact(); e != "" {
					exact = append(exact, e)
				}
				if pre := p.GetPrefix(); pre != "" {
					prefix = append(prefix, pre)
				}
			}
			assert.ElementsMatch(t, tc.want, exact)
			assert.Equal(t, []string{"x-streamgate-"}, prefix)
			for _, h := range tc.not {
				assert.NotContains(t, exact, h)
			}
			assert.Empty(t, forwardRules(cfg).GetDisallowedHeaders().GetPatterns())
		})
	}
}

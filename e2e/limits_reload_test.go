package e2e

import (
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// reloadLimitsConfig limits two tenants of an open gateway by request rate.
const reloadLimitsConfig = listeners + `backends:
  - name: backend-a
    protocol: openai
    endpoints: [{{.BackendA}}]
models:
  - name: model-a
    backend: backend-a
limits:
  tenant_header: x-tenant
  tenants:
    - name: tiny
      requests_per_minute: 2
    - name: steady
      requests_per_minute: 3
`

// tenantStatus sends one non-streamed request as tenant and returns its
// status and x-ratelimit-limit-requests.
func tenantStatus(t *testing.T, e *env, tenant string) (int, string) {
	t.Helper()
	resp, err := postTo(t.Context(), e, chatBody("model-a", false, "x"), map[string]string{"x-tenant": tenant})
	require.NoError(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("x-ratelimit-limit-requests")
}

// TestLimitsReloadLive (issue 24): a tenant at its request rate gets 429;
// the config is edited to a higher rate and the reload succeeds without a
// restart; the tenant's next request passes under the new rate, while a
// tenant whose limits did not change stays limited (its bucket is kept).
// A start-only setting changed in the same edit is named in the log.
func TestLimitsReloadLive(t *testing.T) {
	e := startGateway(t, reloadLimitsConfig)
	for range 2 {
		code, limit := tenantStatus(t, e, "tiny")
		require.Equal(t, http.StatusOK, code)
		assert.Equal(t, "2", limit)
	}
	for range 3 {
		code, _ := tenantStatus(t, e, "steady")
		require.Equal(t, http.StatusOK, code)
	}
	code, _ := tenantStatus(t, e, "tiny")
	require.Equal(t, http.StatusTooManyRequests, code, "tiny is at 2 requests per minute")
	code, _ = tenantStatus(t, e, "steady")
	require.Equal(t, http.StatusTooManyRequests, code, "steady is at 3 requests per minute")

	orig, err := os.ReadFile(e.configPath)
	require.NoError(t, err)
	edited := strings.Replace(string(orig), "requests_per_minute: 2", "requests_per_minute: 6000", 1)
	edited += "telemetry: {tracing: {endpoint: \"127.0.0.1:4317\"}}\n"
	require.NotEqual(t, string(orig), edited)
	writeConfig(t, e, edited)
	waitScrape(t, e, `streamgate_config_reloads_total{result="success"} 1`)
	assert.Contains(t, scrape(t, e), `streamgate_config_reloads_total{result="failure"} 0`)

	// At 2 per minute tiny would wait ~30 s for its next request; at 6000
	// per minute it has room 10 ms after the last one.
	code, limit := tenantStatus(t, e, "tiny")
	assert.Equal(t, http.StatusOK, code, "the raised rate applies to tiny's next request")
	assert.Equal(t, "6000", limit)
	code, _ = tenantStatus(t, e, "steady")
	assert.Equal(t, http.StatusTooManyRequests, code, "steady's limits did not change: its used burst is kept")
	logs := e.logs.String()
	assert.NotContains(t, logs, "takes a restart")
	assert.Contains(t, logs, "telemetry.tracing changed but keeps its old value until a restart")
}

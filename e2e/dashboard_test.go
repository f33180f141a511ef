package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDashboardMetricsExist: every metric the Grafana dashboard of
// docker-compose.yaml queries is exported today, by Streamgate's /metrics
// or by Envoy's /stats/prometheus, once the gateway has served a stream.
func TestDashboardMetricsExist(t *testing.T) {
	resp, err := http.Post(gw.gateway+"/v1/chat/completions", "application/json", strings.NewReader(string(chatBody("model-a", true, "dashboard"))))
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	get := func(url string) string {
		resp, err := http.Get(url)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}
	exported := get(gw.metrics+"/metrics") + get(gw.admin+"/stats/prometheus")

	// Picking metrics have series only with a picking backend:
	// TestPickingFollowsPrefix checks those.
	// Bridge metrics only where the bridge runs: TestBridgeNATSExactlyOnce.
	seen := checkDashboard(t, exported, func(m string) bool {
		return !strings.HasPrefix(m, pickingMetricPrefix) && !strings.HasPrefix(m, bridgeMetricPrefix)
	})
	assert.Greater(t, seen, 5)
}

// bridgeMetricPrefix starts the event-stream bridge's metrics.
const bridgeMetricPrefix = "streamgate_bridge_"

// pickingMetricPrefix starts the metrics of backends with picking.
const pickingMetricPrefix = "streamgate_picking_"

// checkDashboard asserts that every metric the Grafana dashboard queries
// for which want is true appears in exported (Prometheus text), and returns
// how many it checked.
func checkDashboard(t *testing.T, exported string, want func(metric string) bool) int {
	t.Helper()
	raw, err := os.ReadFile("../examples/grafana/dashboards/streamgate.json")
	require.NoError(t, err)
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &d))
	name := regexp.MustCompile(`\b(?:streamgate|envoy|process)_[a-z0-9_]+\b`)
	quoted := regexp.MustCompile(`"[^"]*"`)
	seen := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			expr := quoted.ReplaceAllString(tg.Expr, `""`) // label values are not metrics
			for _, m := range name.FindAllString(expr, -1) {
				if strings.HasPrefix(m, "envoy_") && !strings.Contains(expr, m+"{") && !strings.Contains(expr, m+"[") {
					continue // a label name such as envoy_cluster_name, not a metric
				}
				if !want(m) {
					continue
				}
				seen++
				assert.Regexp(t, `(?m)^`+m+`[{ ]`, exported, "panel %q queries %s, which nothing exports", p.Title, m)
			}
		}
	}
	return seen
}

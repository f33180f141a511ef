package e2e

import (
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSecurityLargeResponseChargesItsTokens (issue 23, finding 4): a
// non-streamed response far over 1 MiB is charged the output tokens its
// usage reports, read by Envoy and inline (it was charged 0).
func TestSecurityLargeResponseChargesItsTokens(t *testing.T) {
	for name, cfg := range map[string]string{
		"envoy":  limitsConfig,
		"inline": strings.Replace(limitsConfig, "limits:\n", "limits:\n  read_usage: inline\n", 1),
	} {
		t.Run(name, func(t *testing.T) {
			cb := startCountingBackend(t)
			e := &env{logs: &syncBuffer{}, done: make(chan error, 1), backendA: cb.backend, backendB: gw.backendB}
			err := e.start(cfg)
			t.Cleanup(func() {
				e.stop()
				if t.Failed() {
					t.Logf("---- gateway logs ----\n%s", e.logs.String())
				}
			})
			require.NoError(t, err)
			before := metric(t, e, `streamgate_tokens_reconciled_total{direction="output"}`)
			resp, err := postTo(t.Context(), e, chatBody("model-a", false, "write a lot"),
				map[string]string{"x-fakellm-tokens": "200000", "x-fakellm-ttft-ms": "0", "x-fakellm-itl-ms": "0"})
			require.NoError(t, err)
			raw, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, 200, resp.StatusCode, "%.300s", raw)
			require.Greater(t, len(raw), 1<<20, "the response is over the old 1 MiB limit")
			var c struct{ Usage usageJSON }
			require.NoError(t, json.Unmarshal(raw, &c))
			require.InDelta(t, 200000, c.Usage.CompletionTokens, 0)
			waitMetric(t, e, "streamgate_reservations_outstanding", 0)
			assert.InDelta(t, c.Usage.CompletionTokens, metric(t, e, `streamgate_tokens_reconciled_total{direction="output"}`)-before, 0)
			assert.InDelta(t, 0, metric(t, e, `streamgate_usage_unread_total{reason="missing"}`), 0)
		})
	}
}

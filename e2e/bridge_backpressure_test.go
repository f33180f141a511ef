package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakellm"
)

// backpressureLimits let the backend hold 8 requests (max_in_flight) and
// the bridge's tenant 6 of them: the backlog must drain at that rate while
// another tenant's interactive requests keep their latency.
const backpressureLimits = `limits:
  queue: {max_wait: 200ms}
  tenants:
    - {name: batch, concurrent_streams: 6}
  backends:
    - {name: llm, max_in_flight: 8}
`

// backendTTFT is how long the fake model takes per request.
const backendTTFT = 50 * time.Millisecond

// TestBridgeBackpressure publishes a backlog on JetStream and measures,
// while the bridge drains it, the drain rate against what the limits let
// the backend sustain (6 requests at a time, 50 ms each: 120/s), the
// backend's peak concurrency (never above its max_in_flight of 8) and the
// latency of another tenant's interactive requests against the same
// requests with no backlog. Figures go to docs/streams.md.
func TestBridgeBackpressure(t *testing.T) {
	br := newNATSBroker(t)
	s := startBridgeSetupExtra(t, br.source(), backpressureLimits, false, fakellm.Options{Tokens: 4, TTFT: backendTTFT})
	ta := newTally()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	br.collect(ctx, t, func(b []byte) { ta.add(t, b) }, func(b []byte) { t.Errorf("dead letter: %.300s", b) })

	idle := interactive(t, s.url, 40)
	// What the gateway admits for the bridge's tenant: 6 closed-loop
	// clients, one per concurrent_streams slot, sending directly.
	direct := closedLoop(t, s.url, 6, 120)
	s.backend.peakOpen()
	n := 400
	if bridgeRequests("") > 1000 {
		n = 3000
	}
	ids := requestIDs("bp", n)
	msgs := make([][]byte, n)
	for i, id := range ids {
		msgs[i] = envelope(id, "model-a", "", br.replyTo(), false)
	}
	t0 := time.Now()
	br.publish(t, ids, msgs)
	loaded := interactive(t, s.url, 40)
	loadedDone := ta.count()
	require.Eventually(t, func() bool { return ta.count() == n }, 3*time.Minute, 20*time.Millisecond)
	drain := time.Since(t0)
	peak := s.backend.peakOpen()
	ta.check(t, ids, func(string) bool { return false })

	rate := float64(n) / drain.Seconds()
	sustained := 6 / backendTTFT.Seconds()
	naks := scrapeLines(t, s.metrics, `streamgate_bridge_messages_total{outcome="nak"`)
	window := scrapeLines(t, s.metrics, `streamgate_bridge_in_flight_limit`)
	t.Logf("FIGURES backpressure: backlog of %d drained in %s = %.0f requests/s (6 direct closed-loop clients of the same tenant get %.0f/s; the backend alone would take %.0f/s: 6 slots x %s); backend peak concurrency %d (max_in_flight 8); bridge naks %s, window at the end %s; interactive (other tenant, 40 sequential) idle p50 %s p99 %s, during the drain p50 %s p99 %s (%d of the backlog answered meanwhile)",
		n, drain.Round(time.Millisecond), rate, direct, sustained, backendTTFT, peak, strings.Join(naks, " "), strings.Join(window, " "),
		percentile(idle, 0.5).Round(100*time.Microsecond), percentile(idle, 0.99).Round(100*time.Microsecond),
		percentile(loaded, 0.5).Round(100*time.Microsecond), percentile(loaded, 0.99).Round(100*time.Microsecond), loadedDone)
	assert.LessOrEqual(t, peak, 8, "the backend never holds more than its max_in_flight")
	assert.Less(t, rate, 1.5*sustained, "the backlog drains at the rate the limits allow, not faster")
	assert.Greater(t, rate, 0.4*direct, "the backlog drains near the rate the gateway admits (a loaded CI machine gets slack)")
	// Interactive requests keep their latency: generous against a loaded
	// 2-core machine; the measured figures are in docs/streams.md.
	assert.Less(t, percentile(loaded, 0.5), percentile(idle, 0.5)+250*time.Millisecond, "interactive p50 during the drain")
}

// closedLoop sends total chat requests as the bridge's tenant from workers
// clients, each sending its next request when the last one ended, and
// returns the rate they were answered at (429 and 503 are retried at once).
func closedLoop(t *testing.T, gateway string, workers, total int) float64 {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(total); {
				body := fmt.Sprintf(`{"model":"model-a","user":"direct-%d","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`, i)
				req, _ := http.NewRequest(http.MethodPost, gateway+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("content-type", "application/json")
				req.Header.Set("authorization", "Bearer "+bridgeKeyBatch)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					i = next.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(total) / time.Since(start).Seconds()
}

// interactive sends k chat requests one at a time as the guest tenant
// (model-b, no concurrency limit of its own) and returns their latencies.
func interactive(t *testing.T, gateway string, k int) []time.Duration {
	t.Helper()
	out := make([]time.Duration, 0, k)
	for i := range k {
		body := fmt.Sprintf(`{"model":"model-b","user":"interactive-%d","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`, i)
		req, err := http.NewRequest(http.MethodPost, gateway+"/v1/chat/completions", bytes.NewReader([]byte(body)))
		require.NoError(t, err)
		req.Header.Set("content-type", "application/json")
		req.Header.Set("authorization", "Bearer "+bridgeKeyGuest)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		out = append(out, time.Since(start))
	}
	return out
}

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// backendFaultConfig: a first-byte deadline of 1 s and a stall timeout
// (stream_idle_timeout) of 3 s; model fb has backend-b as its fallback,
// model solo has none. Limits and telemetry.usage make ext_proc hold a
// concurrency slot and a token reservation and read every response, so a
// fault that leaks them shows in the metrics.
var backendFaultConfig = strings.Replace(listeners, "gateway:\n", "gateway:\n  first_byte_timeout: 1s\n  stream_idle_timeout: 3s\n", 1) + twoBackends + `models:
  - name: fb
    backend: backend-a
    fallbacks: [backend-b]
  - name: solo
    backend: backend-a
limits:
  tenant_header: x-tenant
  tenants:
    - name: "*"
      concurrent_streams: 64
      total_tokens_per_minute: 1000000000
telemetry:
  usage: true
`

// hangOnA makes backend-a hang before its first byte; backend-b answers.
var hangOnA = map[string]string{"x-fakellm-fail": "hang", "x-fakellm-fail-backend": "backend-a"}

// TestFaultBackendHangs: a backend that never starts its response is
// abandoned at first_byte_timeout. With a fallback the client gets the
// fallback's stream; without one, a 504 in its API's error shape. A
// non-streaming request is not bounded by the deadline. Under steady load
// with the primary hanging, every stream is served by the fallback.
func TestFaultBackendHangs(t *testing.T) {
	e := startGateway(t, backendFaultConfig)
	hang := func(t *testing.T, path string, body []byte, extra map[string]string) (*http.Response, []byte, time.Duration) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, e.gateway+path, bytes.NewReader(body))
		require.NoError(t, err)
		for k, v := range hangOnA {
			req.Header.Set(k, v)
		}
		for k, v := range extra {
			req.Header.Set(k, v)
		}
		start := time.Now()
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, b, time.Since(start)
	}

	t.Run("the fallback answers", func(t *testing.T) {
		resp, b, took := hang(t, "/v1/chat/completions", chatBody("fb", true, "x"), nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
		assert.Equal(t, "backend-b", resp.Header.Get("x-fakellm-backend"))
		pieces, err := readStream(bytes.NewReader(b))
		require.NoError(t, err)
		assert.Equal(t, wantTokens(16), pieces)
		assert.GreaterOrEqual(t, took, time.Second, "the primary had its whole deadline")
		t.Logf("primary hanging: the fallback's stream after %s", took.Round(time.Millisecond))
	})
	t.Run("no fallback: 504 OpenAI error", func(t *testing.T) {
		resp, b, took := hang(t, "/v1/chat/completions", chatBody("solo", true, "x"), nil)
		require.Equal(t, http.StatusGatewayTimeout, resp.StatusCode, "%s", b)
		var e struct {
			Error struct{ Message, Type, Code string }
		}
		require.NoError(t, json.Unmarshal(b, &e), "%s", b)
		assert.Equal(t, "server_error", e.Error.Type)
		assert.Equal(t, "upstream_per_try_timeout", e.Error.Code)
		assert.Equal(t, "upstream request timeout", e.Error.Message)
		t.Logf("no fallback: %d %s after %s", resp.StatusCode, b, took.Round(time.Millisecond))
	})
	t.Run("no fallback: 504 Anthropic error on /v1/messages", func(t *testing.T) {
		body := []byte(`{"model":"solo","max_tokens":32,"stream":true,"messages":[{"role":"user","content":"x"}]}`)
		resp, b, _ := hang(t, "/v1/messages", body, map[string]string{"anthropic-version": "2023-06-01"})
		require.Equal(t, http.StatusGatewayTimeout, resp.StatusCode, "%s", b)
		var e struct {
			Type  string
			Error struct{ Type, Message string }
		}
		require.NoError(t, json.Unmarshal(b, &e), "%s", b)
		assert.Equal(t, "error", e.Type)
		assert.Equal(t, "api_error", e.Error.Type)
	})
	t.Run("a non-streaming request is not bounded", func(t *testing.T) {
		resp, err := postTo(t.Context(), e, chatBody("solo", false, "x"), map[string]string{"x-fakellm-ttft-ms": "1500"})
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, "a whole answer after 1.5 s passes the 1 s deadline")
	})

	// Steady load on fb; the primary hangs for a while, then recovers.
	clients, outage := 8, 3*time.Second
	if faultsLong() {
		clients, outage = 32, 15*time.Second
	}
	var headers atomic.Pointer[map[string]string]
	ctx, stop := context.WithCancel(context.Background())
	load, wg := runLoad(ctx, loadSpec{gateway: e.gateway, clients: clients, model: "fb", headers: &headers})
	time.Sleep(500 * time.Millisecond)
	headers.Store(&hangOnA)
	time.Sleep(outage / 2)
	chain := "cluster.streamgate_failover_backend-a+backend-b."
	admin := strings.TrimPrefix(e.admin, "http://")
	t.Logf("mid-outage: requests active on the chain's aggregate cluster %d, on backend-a %d, on backend-b %d",
		adminStat(admin, chain+"upstream_rq_active"), adminStat(admin, "cluster.backend-a.upstream_rq_active"), adminStat(admin, "cluster.backend-b.upstream_rq_active"))
	time.Sleep(outage - outage/2)
	headers.Store(nil)
	healed := time.Now()
	time.Sleep(time.Second)
	stop()
	wg.Wait()
	t.Logf("primary hanging for %s under %d clients: outcomes %v, slowest %v; first success after it healed %s",
		outage, clients, load.outcomes, load.slowest, load.firstOKAfter(healed).Round(time.Millisecond))
	stats := map[string]int64{}
	for _, s := range []string{"upstream_rq_per_try_timeout", "upstream_rq_retry", "upstream_rq_retry_overflow", "upstream_rq_retry_limit_exceeded", "upstream_rq_retry_success"} {
		stats[s] = adminStat(admin, chain+s)
	}
	t.Logf("failover chain stats: %v", stats)
	assert.Equal(t, load.outcomes["ok"], sum(load.outcomes), "every stream is served, by the fallback while the primary hangs")
	assert.Zero(t, stats["upstream_rq_retry_overflow"], "the chain's retry budget lets every request move on")
	assertNothingHeld(t, e)
}

// assertNothingHeld checks, from the metrics, that no reservation,
// concurrency hold or ext_proc stream is left and Envoy has no request
// active.
func assertNothingHeld(t *testing.T, e *env) {
	t.Helper()
	waitMetric(t, e, "streamgate_reservations_outstanding", 0)
	waitMetric(t, e, "streamgate_ratelimit_holds_outstanding", 0)
	waitMetric(t, e, "streamgate_extproc_streams_open", 0)
	var active int64
	require.Eventually(t, func() bool {
		active = adminStat(strings.TrimPrefix(e.admin, "http://"), "http.streamgate.downstream_rq_active")
		return active == 0
	}, 10*time.Second, 50*time.Millisecond, "Envoy still has requests active: %d", active)
}

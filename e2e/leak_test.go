package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// leakConfig: limits (a concurrency cap and token rates), telemetry reading
// usage with prices, and a translated model, so a disconnect can strike a
// request holding a slot, a reservation, a usage meter or a translator.
const leakConfig = listeners + `backends:
  - name: backend-a
    protocol: openai
    endpoints: [{{.BackendA}}]
  - name: claude
    protocol: anthropic
    endpoints: [{{.BackendB}}]
models:
  - name: model-a
    backend: backend-a
  - name: model-t
    backend: claude
limits:
  tenant_header: x-tenant
  queue: {size: 1000, max_wait: 1s}
  tenants:
    - name: "*"
      concurrent_streams: 24
      total_tokens_per_minute: 1000000000
telemetry:
  usage: true
  prices: {model-a: {input_per_million: 1, output_per_million: 2}, model-t: {input_per_million: 3, output_per_million: 15}}
`

// TestLeakRandomDisconnects sends streams that the client abandons at a
// random point (before its headers are complete, mid-upload, mid-stream)
// or completes, against limits, telemetry and translation. Afterwards
// nothing is held: no reservation, concurrency hold or ext_proc stream,
// Envoy has no request active, goroutines are back to their baseline, and
// the tenant's whole concurrency is free again. `make faults` sends
// 10,000 streams; make test 600.
func TestLeakRandomDisconnects(t *testing.T) {
	e := startGateway(t, leakConfig)
	total := 600
	if faultsLong() {
		total = 10000
	}
	testLeak(t, e, total)
}

// TestLeakRandomDisconnectsSharedConcurrency is TestLeakRandomDisconnects
// with the concurrency slots held in Redis (limits.redis.concurrency
// shared): every disconnect point releases its leases exactly once, so
// Redis counts no slot afterwards and the tenant's whole cap is free.
func TestLeakRandomDisconnectsSharedConcurrency(t *testing.T) {
	addr := e2eRedis(t, "STREAMGATE_TEST_REDIS")
	prefix := randomPrefix()
	cfg := strings.Replace(leakConfig, "  queue: {size: 1000, max_wait: 1s}\n",
		"  queue: {size: 1000, max_wait: 1s}\n  store: redis\n  redis: {address: \""+addr+"\", key_prefix: "+prefix+", timeout: 500ms}\n", 1)
	require.Contains(t, cfg, "store: redis")
	e := startGateway(t, cfg)
	total := 300
	if sharedLong() {
		total = 5000
	}
	testLeak(t, e, total)
	waitMetric(t, e, "streamgate_concurrency_leases_held", 0)
	rc := testRedisClient(t, addr, false)
	for i := range 4 {
		n, _ := rc.HGet(t.Context(), fmt.Sprintf("%s:c:{t%d}:h", prefix, i), "n").Result()
		assert.Contains(t, []string{"", "0"}, n, "tenant t%d's pool holds nothing in Redis", i)
	}
}

// testLeak sends total streams abandoned at random points through e, then
// checks that nothing is held.
func testLeak(t *testing.T, e *env, total int) {
	http.DefaultClient.CloseIdleConnections()
	baseline := metric(t, e, "go_goroutines")
	addr := hostPort(e.gateway)
	var sent atomic.Int64
	var kinds sync.Map
	var wg sync.WaitGroup
	start := time.Now()
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for sent.Add(1) <= int64(total) {
				kind := leakRequest(t, e, addr, rng)
				v, _ := kinds.LoadOrStore(kind, new(atomic.Int64))
				v.(*atomic.Int64).Add(1)
			}
		}()
	}
	wg.Wait()
	counts := map[string]int64{}
	kinds.Range(func(k, v any) bool { counts[k.(string)] = v.(*atomic.Int64).Load(); return true })
	t.Logf("%d streams in %s: %v", total, time.Since(start).Round(time.Millisecond), counts)

	waitMetric(t, e, "streamgate_reservations_outstanding", 0)
	waitMetric(t, e, "streamgate_ratelimit_holds_outstanding", 0)
	waitMetric(t, e, "streamgate_extproc_streams_open", 0)
	var active int64
	require.Eventually(t, func() bool {
		active = adminStat(strings.TrimPrefix(e.admin, "http://"), "http.streamgate.downstream_rq_active")
		return active == 0
	}, 10*time.Second, 50*time.Millisecond, "Envoy still has requests active: %d", active)
	// The clients' own idle connections are goroutines of this process too.
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(15 * time.Second)
	goroutines := metric(t, e, "go_goroutines")
	for goroutines > baseline+25 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		goroutines = metric(t, e, "go_goroutines")
	}
	assert.LessOrEqual(t, goroutines, baseline+25, "goroutines back to the baseline (other gateways of this test process idle beside it)")
	t.Logf("goroutines: baseline %v, after %v", baseline, goroutines)

	// Every one of the tenant's 24 slots is free: 24 concurrent streams are
	// all admitted at once (a leaked slot would queue one past max_wait).
	var admitted atomic.Int64
	var all sync.WaitGroup
	for range 24 {
		all.Add(1)
		go func() {
			defer all.Done()
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			resp, err := postTo(ctx, e, chatBody("model-a", true, "x"), map[string]string{"x-tenant": "t1", "x-fakellm-tokens": "50", "x-fakellm-itl-ms": "20"})
			if err == nil {
				if resp.StatusCode == http.StatusOK {
					admitted.Add(1)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	all.Wait()
	assert.EqualValues(t, 24, admitted.Load(), "the tenant's concurrency is whole again")
	waitMetric(t, e, "streamgate_reservations_outstanding", 0)
}

// leakRequest sends one request and abandons it at a random point; it
// returns which kind it was.
func leakRequest(t *testing.T, e *env, addr string, rng *rand.Rand) string {
	model := "model-a"
	if rng.IntN(2) == 0 {
		model = "model-t"
	}
	body := chatBody(model, true, strings.Repeat("leak ", 1+rng.IntN(200)))
	tenant := fmt.Sprintf("t%d", rng.IntN(4))
	switch rng.IntN(4) {
	case 0: // the client leaves before its headers are complete
		rawRequest(addr, fmt.Sprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-tenant: %s\r\ncontent-type: appl", tenant), 0)
		return "before headers"
	case 1: // mid-upload: headers and part of the body
		head := fmt.Sprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-tenant: %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n", tenant, len(body))
		rawRequest(addr, head+string(body[:len(body)/2]), time.Duration(rng.IntN(20))*time.Millisecond)
		return "mid-upload"
	case 2: // mid-stream: read a few events, then go
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		resp, err := postTo(ctx, e, body, map[string]string{"x-tenant": tenant, "x-fakellm-tokens": "200", "x-fakellm-itl-ms": "1"})
		if err != nil {
			return "mid-stream (error)"
		}
		br := bufio.NewReader(resp.Body)
		for range 1 + rng.IntN(40) {
			if _, err := br.ReadString('\n'); err != nil {
				break
			}
		}
		cancel()
		resp.Body.Close()
		return "mid-stream"
	default:
		resp, err := postTo(t.Context(), e, body, map[string]string{"x-tenant": tenant, "x-fakellm-tokens": "10"})
		if err != nil {
			return "complete (error)"
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return fmt.Sprintf("complete %d", resp.StatusCode)
	}
}

// rawRequest writes a partial HTTP/1.1 request, waits, and closes the
// connection without reading.
func rawRequest(addr, partial string, wait time.Duration) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer c.Close()
	_, _ = c.Write([]byte(partial))
	time.Sleep(wait)
}

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakellm"
)

// sharedConcurrencyConfig: concurrency held in Redis (REDIS, CLUSTER,
// PREFIX and TTL are replaced). Tenant "capped" may open 4 streams in all;
// backend-a serves 6 at once, shared fairly between tenants.
var sharedConcurrencyConfig = twoModels("5s") + `limits:
  tenant_header: x-tenant
  store: redis
  redis: {address: "REDIS", cluster: CLUSTER, key_prefix: "PREFIX", timeout: 500ms, lease_ttl: TTL}
  queue: {size: 1000, max_wait: 1s}
  tenants:
    - name: capped
      concurrent_streams: 4
  backends:
    - {name: backend-a, max_in_flight: 6}
`

const (
	sharedCap     = 4 // capped's concurrent_streams
	sharedBackend = 6 // backend-a's max_in_flight
	sharedTTL     = 2 * time.Second
)

func sharedConfig(addr string, cluster bool, prefix string) string {
	return strings.NewReplacer("REDIS", addr, "CLUSTER", fmt.Sprint(cluster), "PREFIX", prefix, "TTL", sharedTTL.String()).
		Replace(sharedConcurrencyConfig)
}

// tenantBackend is a fakellm server that counts, per tenant (the x-tenant
// header Envoy forwards), the streams it serves at once, the peak, and the
// time it spent serving each.
type tenantBackend struct {
	*backend
	mu     sync.Mutex
	open   map[string]int
	peak   map[string]int
	total  int
	most   int
	served map[string]time.Duration
}

func startTenantBackend(t testing.TB) *tenantBackend {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	tb := &tenantBackend{backend: &backend{Server: fakellm.New(fakellm.Options{Name: "tenants"}), url: "http://" + lis.Addr().String(), tap: &tap{}},
		open: map[string]int{}, peak: map[string]int{}, served: map[string]time.Duration{}}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, start := r.Header.Get("x-e2e-tenant"), time.Now()
		tb.mu.Lock()
		tb.open[tenant]++
		tb.peak[tenant] = max(tb.peak[tenant], tb.open[tenant])
		tb.total++
		tb.most = max(tb.most, tb.total)
		tb.mu.Unlock()
		defer func() {
			tb.mu.Lock()
			tb.open[tenant]--
			tb.total--
			tb.served[tenant] += time.Since(start)
			tb.mu.Unlock()
		}()
		tb.Server.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return tb
}

// reset forgets the peaks and times measured so far.
func (tb *tenantBackend) reset() {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	clear(tb.peak)
	clear(tb.served)
	tb.most = tb.total
}

func (tb *tenantBackend) stats(tenant string) (open, peak int, served time.Duration) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.open[tenant], tb.peak[tenant], tb.served[tenant]
}

// startSharedGateways runs n in-process gateways (each with its own
// Envoy) on one Redis, in front of one tenant-counting backend.
func startSharedGateways(t *testing.T, cfg string, n int, tb *tenantBackend) []*env {
	t.Helper()
	var gws []*env
	for range n {
		e := &env{logs: &syncBuffer{}, done: make(chan error, 1), backendA: tb.backend, backendB: gw.backendB}
		err := e.start(cfg)
		t.Cleanup(func() {
			e.stop()
			if t.Failed() {
				t.Logf("---- gateway logs ----\n%s", e.logs.String())
			}
		})
		require.NoError(t, err)
		gws = append(gws, e)
	}
	return gws
}

// sharedStream sends one streaming request for tenant and reads it to the
// end; it returns the status (0 on a transport error).
func sharedStream(ctx context.Context, e *env, tenant string, tokens, itlMs int) int {
	resp, err := postTo(ctx, e, chatBody("model-a", true, "shared"), map[string]string{
		"x-tenant": tenant, "x-e2e-tenant": tenant, "x-fakellm-tokens": fmt.Sprint(tokens), "x-fakellm-itl-ms": fmt.Sprint(itlMs),
	})
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// flood runs workers per gateway for tenant until ctx ends, each sending
// streams back to back (20 ms after a refusal); it counts admissions per
// gateway.
func flood(ctx context.Context, wg *sync.WaitGroup, gws []*env, workers int, tenant string, admitted []atomic.Int64) {
	for g, e := range gws {
		for range workers {
			wg.Go(func() {
				for ctx.Err() == nil {
					if sharedStream(ctx, e, tenant, 10, 10) == http.StatusOK {
						admitted[g].Add(1)
						continue
					}
					time.Sleep(20 * time.Millisecond)
				}
			})
		}
	}
}

// TestSharedConcurrency runs three gateways on one Redis (and on a Redis
// Cluster): a tenant flooding all three never has more streams open at the
// backend than its one concurrent_streams cap (not one cap per gateway),
// and a tenant spread over all three gateways gets no more of a shared
// backend than a tenant on one. Everything is released afterwards.
func TestSharedConcurrency(t *testing.T) {
	t.Run("server", func(t *testing.T) { testSharedConcurrency(t, e2eRedis(t, "STREAMGATE_TEST_REDIS"), false) })
	t.Run("cluster", func(t *testing.T) { testSharedConcurrency(t, e2eRedis(t, "STREAMGATE_TEST_REDIS_CLUSTER"), true) })
}

func testSharedConcurrency(t *testing.T, addr string, cluster bool) {
	window := 3 * time.Second
	if sharedLong() {
		window = 20 * time.Second
	}
	tb := startTenantBackend(t)
	prefix := randomPrefix()
	gws := startSharedGateways(t, sharedConfig(addr, cluster, prefix), 3, tb)

	t.Run("one cap across gateways", func(t *testing.T) {
		tb.reset()
		ctx, stop := context.WithTimeout(t.Context(), window)
		defer stop()
		admitted := make([]atomic.Int64, len(gws))
		var wg sync.WaitGroup
		flood(ctx, &wg, gws, 6, "capped", admitted)
		wg.Wait()
		_, peak, _ := tb.stats("capped")
		t.Logf("18 clients of one tenant over 3 gateways for %v: admitted %d / %d / %d streams; peak open at the backend %d (cap %d)",
			window, admitted[0].Load(), admitted[1].Load(), admitted[2].Load(), peak, sharedCap)
		assert.LessOrEqual(t, peak, sharedCap, "one cap across the gateways, not one each")
		assert.Equal(t, sharedCap, peak, "the cap is used")
		for g := range gws {
			assert.Positive(t, admitted[g].Load(), "gateway %d admitted streams", g)
		}
	})

	t.Run("fair share of a backend", func(t *testing.T) {
		tb.reset()
		ctx, stop := context.WithTimeout(t.Context(), window)
		defer stop()
		spread, single := make([]atomic.Int64, len(gws)), make([]atomic.Int64, 1)
		var wg sync.WaitGroup
		flood(ctx, &wg, gws, 8, "spread", spread)
		flood(ctx, &wg, gws[:1], 8, "single", single)
		wg.Wait()
		_, _, a := tb.stats("spread")
		_, _, b := tb.stats("single")
		tb.mu.Lock()
		most := tb.most
		tb.mu.Unlock()
		share := b.Seconds() / (a + b).Seconds()
		t.Logf("backend max_in_flight %d: tenant spread (24 clients on 3 gateways) %v of stream time, %d streams; tenant single (8 clients on 1) %v, %d streams: single's share %.2f; peak open %d",
			sharedBackend, a.Round(time.Millisecond), spread[0].Load()+spread[1].Load()+spread[2].Load(), b.Round(time.Millisecond), single[0].Load(), share, most)
		assert.LessOrEqual(t, most, sharedBackend, "the backend's cap holds across gateways")
		// Fair is 0.5; per-gateway round robin would give single about 1/4.
		assert.GreaterOrEqual(t, share, 0.4, "a tenant on one gateway keeps close to half of the backend")
	})

	for _, e := range gws {
		waitMetric(t, e, "streamgate_reservations_outstanding", 0)
		waitMetric(t, e, "streamgate_concurrency_leases_held", 0)
		if n := metric(t, e, "streamgate_ratelimit_store_errors_total"); !assert.Zero(t, n, "no Redis call failed") {
			for _, line := range strings.Split(e.logs.String(), "\n") {
				if strings.Contains(line, "store unreachable") {
					t.Log(line)
				}
			}
		}
	}
	rc := testRedisClient(t, addr, cluster)
	for _, pool := range []string{prefix + ":c:{capped}", prefix + ":b:{backend-a}"} {
		n, err := rc.HGet(t.Context(), pool+":h", "n").Result()
		if err != redis.Nil {
			require.NoError(t, err)
		}
		assert.Contains(t, []string{"", "0"}, n, "pool %s holds nothing in Redis", pool)
	}
}

// testRedisClient is a plain client of the test Redis, closed at the end.
func testRedisClient(t *testing.T, addr string, cluster bool) redis.UniversalClient {
	t.Helper()
	rc := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{addr}, IsClusterMode: cluster})
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// sharedLong reports whether `make concurrency-long` asked for long runs.
func sharedLong() bool { return os.Getenv("STREAMGATE_SHARED_LONG") != "" }

// TestSharedConcurrencyGatewayKilled: a gateway holding all of a tenant's
// slots is SIGKILLed mid-stream; the two other gateways on the same Redis
// get every slot back within the lease TTL (2 s here), measured from the
// kill to the moment all 4 are held again through them.
func TestSharedConcurrencyGatewayKilled(t *testing.T) {
	t.Run("server", func(t *testing.T) { testGatewayKilled(t, e2eRedis(t, "STREAMGATE_TEST_REDIS"), false) })
	t.Run("cluster", func(t *testing.T) {
		if !sharedLong() {
			t.Skip("make concurrency-long runs this on the cluster too")
		}
		testGatewayKilled(t, e2eRedis(t, "STREAMGATE_TEST_REDIS_CLUSTER"), true)
	})
}

func testGatewayKilled(t *testing.T, addr string, cluster bool) {
	tb := startTenantBackend(t)
	cfg := sharedConfig(addr, cluster, randomPrefix())
	victim := startProcessGateway(t, buildStreamgate(t), cfg, tb)
	gws := startSharedGateways(t, cfg, 2, tb)

	// The victim takes all 4 slots with long streams (~10 s).
	for range sharedCap {
		go func() { _ = sharedStream(context.Background(), victim.env, "capped", 400, 25) }()
	}
	require.Eventually(t, func() bool { open, _, _ := tb.stats("capped"); return open == sharedCap }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, http.StatusTooManyRequests, sharedStream(t.Context(), gws[0], "capped", 1, 1), "the other gateways see the cap full")

	tb.reset()
	require.NoError(t, victim.cmd.Process.Kill())
	killed := time.Now()
	_ = victim.cmd.Wait()
	// Clients on the survivors ask until each holds a ~2 s stream.
	var wg sync.WaitGroup
	var got atomic.Int64
	back := make(chan time.Duration, 1)
	for i := range sharedCap {
		wg.Go(func() {
			for time.Since(killed) < 4*sharedTTL {
				resp, err := postTo(t.Context(), gws[i%2], chatBody("model-a", true, "again"), map[string]string{
					"x-tenant": "capped", "x-e2e-tenant": "capped-after", "x-fakellm-tokens": "100", "x-fakellm-itl-ms": "20"})
				if err != nil {
					continue
				}
				if resp.StatusCode == http.StatusOK {
					if got.Add(1) == sharedCap {
						back <- time.Since(killed)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	require.EqualValues(t, sharedCap, got.Load(), "all slots came back")
	took := <-back
	_, peak, _ := tb.stats("capped-after")
	t.Logf("SIGKILL of the gateway holding all %d slots: all held again through the survivors %v after the kill (lease TTL %v, heartbeat every %v); peak open %d",
		sharedCap, took.Round(time.Millisecond), sharedTTL, sharedTTL/5, peak)
	assert.Less(t, took, sharedTTL+time.Second, "within the TTL (and a queue wait)")
	assert.LessOrEqual(t, peak, sharedCap)
	for _, e := range gws {
		waitMetric(t, e, "streamgate_concurrency_leases_held", 0)
	}
}

// processGateway is `streamgate run` as a child process, to be SIGKILLed.
type processGateway struct {
	*env
	cmd *exec.Cmd
}

// startProcessGateway runs the streamgate binary bin with cfg in front of
// tb's backend; its Envoy exits with it (Pdeathsig).
func startProcessGateway(t *testing.T, bin, cfg string, tb *tenantBackend) *processGateway {
	t.Helper()
	ports, err := freePorts(5)
	require.NoError(t, err)
	p := Ports{Gateway: ports[0], ExtProc: ports[1], XDS: ports[2], Admin: ports[3], Metrics: ports[4],
		BackendA: hostPort(tb.url), BackendB: hostPort(gw.backendB.url)}
	var buf bytes.Buffer
	require.NoError(t, template.Must(template.New("c").Parse(cfg)).Execute(&buf, p))
	path := filepath.Join(t.TempDir(), "streamgate.yaml")
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
	logs := &syncBuffer{}
	cmd := exec.Command(bin, "run", "-c", path, "--envoy-log-level", "warning")
	cmd.Dir = ".."
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("---- killed gateway logs ----\n%s", logs.String())
		}
	})
	e := &env{gateway: "http://" + p.Gateway, metrics: "http://" + p.Metrics, logs: logs, done: make(chan error, 1)}
	require.NoError(t, e.waitReady(30*time.Second))
	return &processGateway{env: e, cmd: cmd}
}

// TestSharedConcurrencyRedisOutage: Redis stops answering (SIGSTOP) while
// a gateway failing open holds leases. Streams that end meanwhile cannot
// release theirs; new ones get per-process slots (the same cap, in this
// process); the outage is logged once. When Redis answers again the
// heartbeat sets its counts to what the gateway holds: nothing leaks.
// A gateway failing closed refuses capped requests with 503 meanwhile.
func TestSharedConcurrencyRedisOutage(t *testing.T) {
	redisBin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("STREAMGATE_REQUIRE_ALL") == "1" {
			t.Fatalf("redis-server is required (STREAMGATE_REQUIRE_ALL=1): %v", err)
		}
		t.Skip("no redis-server to stop and resume")
	}
	ports, err := freePorts(1)
	require.NoError(t, err)
	addr := ports[0]
	_, port, _ := net.SplitHostPort(addr)
	srv := exec.Command(redisBin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	require.NoError(t, srv.Start())
	t.Cleanup(func() { _ = srv.Process.Signal(syscall.SIGCONT); _ = srv.Process.Kill(); _ = srv.Wait() })
	rc := testRedisClient(t, addr, false)
	require.Eventually(t, func() bool { return rc.Ping(t.Context()).Err() == nil }, 5*time.Second, 20*time.Millisecond)

	tb := startTenantBackend(t)
	prefix := randomPrefix()
	cfg := strings.Replace(sharedConfig(addr, false, prefix), "lease_ttl:", "fail_open: true, lease_ttl:", 1)
	e := startSharedGateways(t, cfg, 1, tb)[0]
	held := func() string { n, _ := rc.HGet(context.Background(), prefix+":c:{capped}:h", "n").Result(); return n }

	// Two ~2 s streams hold leases; Redis stops while they run.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { assert.Equal(t, http.StatusOK, sharedStream(t.Context(), e, "capped", 100, 20)) })
	}
	require.Eventually(t, func() bool { open, _, _ := tb.stats("capped"); return open == 2 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, "2", held())
	require.NoError(t, srv.Process.Signal(syscall.SIGSTOP))
	wg.Wait() // their releases are lost

	// Meanwhile: per-process slots, the cap of 4 in this process.
	codes := make([]int, sharedCap+1)
	for i := range codes {
		wg.Go(func() { codes[i] = sharedStream(t.Context(), e, "capped", 100, 20) })
	}
	wg.Wait()
	ok := 0
	for _, c := range codes {
		if c == http.StatusOK {
			ok++
		}
	}
	assert.Equal(t, sharedCap, ok, "the per-process cap while Redis is away: %v", codes)
	assert.Contains(t, codes, http.StatusTooManyRequests)
	assert.InDelta(t, 1, metric(t, e, "streamgate_ratelimit_store_outage"), 0)
	assert.Positive(t, metric(t, e, "streamgate_concurrency_local_fallback_total"))

	require.NoError(t, srv.Process.Signal(syscall.SIGCONT))
	require.Eventually(t, func() bool { return held() == "" }, 5*time.Second, 20*time.Millisecond,
		"the heartbeat returns the lost releases' slots (Redis counts %q)", held())
	waitMetric(t, e, "streamgate_ratelimit_store_outage", 0)
	assert.Equal(t, 1, strings.Count(e.logs.String(), "rate limit store unreachable"), "logged once per outage")

	// The whole cap is shared again.
	tb.reset()
	for i := range sharedCap {
		wg.Go(func() { codes[i] = sharedStream(t.Context(), e, "capped", 50, 20) })
	}
	wg.Wait()
	assert.Equal(t, []int{200, 200, 200, 200}, codes[:sharedCap])
	waitMetric(t, e, "streamgate_concurrency_leases_held", 0)
	assert.Empty(t, held())

	t.Run("fail closed", func(t *testing.T) {
		closed := startSharedGateways(t, strings.Replace(sharedConfig(down(t), false, prefix), "lease_ttl:", "fail_open: false, lease_ttl:", 1), 1, tb)[0]
		resp, err := postTo(t.Context(), closed, chatBody("model-a", true, "x"), map[string]string{"x-tenant": "capped"})
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		assert.Contains(t, string(body), `"code":"overloaded"`)
		assert.Equal(t, "1", resp.Header.Get("retry-after"))
	})
}

// down is a loopback address nothing listens on.
func down(t *testing.T) string {
	t.Helper()
	ports, err := freePorts(1)
	require.NoError(t, err)
	return ports[0]
}

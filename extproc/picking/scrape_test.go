package picking

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

// fakeServer is a model server's /metrics: it serves body (swappable) and
// counts the scrapes it answered.
type fakeServer struct {
	*httptest.Server
	body    atomic.Pointer[[]byte]
	scrapes atomic.Int64
	handle  func(w http.ResponseWriter, r *http.Request) bool // optional override; true when it answered
}

func newFakeServer(t *testing.T, body []byte) *fakeServer {
	t.Helper()
	s := &fakeServer{}
	s.body.Store(&body)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		s.scrapes.Add(1)
		if s.handle != nil && s.handle(w, r) {
			return
		}
		_, _ = w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *fakeServer) addr() string { return strings.TrimPrefix(s.URL, "http://") }

// testPicking is a fast picking block with the defaults config applies.
func testPicking(metrics string) *config.Picking {
	return &config.Picking{
		Metrics: metrics, MetricsPath: "/metrics",
		Interval: 10 * time.Millisecond, Timeout: 200 * time.Millisecond, StaleAfter: 300 * time.Millisecond,
		Weights: &config.PickWeights{}, PrefixBlockBytes: 256, PrefixBlocks: 64, Fallbacks: 2,
	}
}

func poolConfig(pk *config.Picking, addrs ...string) *config.Config {
	b := config.Backend{Name: "llm", Picking: pk}
	for _, a := range addrs {
		b.Endpoints = append(b.Endpoints, config.Endpoint{Address: a, Weight: 1})
	}
	return &config.Config{Backends: []config.Backend{b}}
}

func newTestPool(t *testing.T, reg prometheus.Registerer) *Pool {
	t.Helper()
	p := NewPool(reg, nil)
	t.Cleanup(p.Close)
	return p
}

// endpoint is backend llm's endpoint at addr.
func endpoint(t *testing.T, p *Pool, addr string) *Endpoint {
	t.Helper()
	b := p.Backend("llm")
	require.NotNil(t, b)
	for _, e := range b.Endpoints() {
		if e.Addr == addr {
			return e
		}
	}
	t.Fatalf("no endpoint %s", addr)
	return nil
}

func waitScraped(t *testing.T, e *Endpoint) Metrics {
	t.Helper()
	require.Eventually(t, func() bool { _, _, ok := e.Load(); return ok }, 5*time.Second, 5*time.Millisecond, "no scrape of %s", e.Addr)
	m, _, _ := e.Load()
	return m
}

func TestPoolScrapesEndpointMetrics(t *testing.T) {
	srv := newFakeServer(t, readTestdata(t, "vllm_lora.txt"))
	p := newTestPool(t, nil)
	p.Update(poolConfig(testPicking(config.PickMetricsVLLM), srv.addr()))
	e := endpoint(t, p, srv.addr())
	m := waitScraped(t, e)
	assert.Equal(t, Metrics{Waiting: 3, Running: 12, KVCache: 0.4215, RunningLoRA: []string{"sql-lora"}, WaitingLoRA: []string{"chat-lora"}, MaxLoRA: 4}, m)
	_, fresh := e.Fresh(time.Now(), 300*time.Millisecond)
	assert.True(t, fresh)

	// New values reach the endpoint within a few intervals.
	next := []byte("vllm:num_requests_waiting 9\nvllm:num_requests_running 1\nvllm:kv_cache_usage_perc 0.1\n")
	srv.body.Store(&next)
	require.Eventually(t, func() bool { m, _, _ := e.Load(); return m.Waiting == 9 }, 5*time.Second, 5*time.Millisecond)
}

func TestPoolWithDialectNoneDoesNotScrape(t *testing.T) {
	srv := newFakeServer(t, readTestdata(t, "vllm.txt"))
	p := newTestPool(t, nil)
	p.Update(poolConfig(testPicking(config.PickMetricsNone), srv.addr()))
	require.NotNil(t, p.Backend("llm"))
	time.Sleep(50 * time.Millisecond)
	assert.Zero(t, srv.scrapes.Load())
	_, _, ok := endpoint(t, p, srv.addr()).Load()
	assert.False(t, ok)
}

// TestScrapeFailureKeepsTheSnapshotUntilStale pins the fallback: a server
// that stops answering keeps its last scrape, which ages past stale_after
// (Fresh false, so the scorers use in-flight counts), and every failed
// scrape is counted.
func TestScrapeFailureKeepsTheSnapshotUntilStale(t *testing.T) {
	srv := newFakeServer(t, readTestdata(t, "vllm.txt"))
	reg := prometheus.NewRegistry()
	p := newTestPool(t, reg)
	pk := testPicking(config.PickMetricsVLLM)
	p.Update(poolConfig(pk, srv.addr()))
	e := endpoint(t, p, srv.addr())
	want := waitScraped(t, e)

	srv.Close()
	connectErrs := p.metrics.errors.WithLabelValues("llm", srv.addr(), "connect")
	require.Eventually(t, func() bool { return testutil.ToFloat64(connectErrs) >= 3 }, 5*time.Second, 5*time.Millisecond)
	m, at, ok := e.Load()
	require.True(t, ok, "the last scrape is kept")
	assert.Equal(t, want, m)
	_, fresh := e.Fresh(at.Add(pk.StaleAfter+time.Millisecond), pk.StaleAfter)
	assert.False(t, fresh, "past stale_after the scrape is ignored")
	require.Eventually(t, func() bool { _, fresh := e.Fresh(time.Now(), pk.StaleAfter); return !fresh }, 5*time.Second, 10*time.Millisecond)
}

func TestScrapeErrorsAreCountedByReason(t *testing.T) {
	big := []byte("vllm:num_requests_waiting 1\n# " + strings.Repeat("x", maxBody) + "\n")
	tests := map[string]struct {
		body   []byte
		handle func(w http.ResponseWriter, r *http.Request) bool
	}{
		"status": {handle: func(w http.ResponseWriter, _ *http.Request) bool {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return true
		}},
		"timeout": {handle: func(w http.ResponseWriter, r *http.Request) bool {
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
			return true
		}},
		"too_large": {handle: func(w http.ResponseWriter, _ *http.Request) bool {
			w.Header().Set("Content-Length", strconv.Itoa(len(big))) // refused before reading
			_, _ = w.Write(big)
			return true
		}},
		"too_large_chunked": {handle: func(w http.ResponseWriter, _ *http.Request) bool {
			for range 5 {
				_, _ = w.Write(big[:maxBody/4+1]) // no Content-Length: the read bound decides
				w.(http.Flusher).Flush()
			}
			return true
		}},
		"parse":   {body: []byte("vllm:num_requests_waiting{model_name=\"m\" 3\n")},
		"missing": {body: readTestdata(t, "tgi.txt")},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			srv := newFakeServer(t, tc.body)
			srv.handle = tc.handle
			p := newTestPool(t, nil)
			pk := testPicking(config.PickMetricsVLLM)
			pk.Timeout = 2 * time.Second // reading 4 MiB under -race on a busy machine
			if name == "timeout" {
				pk.Timeout = 50 * time.Millisecond
			}
			p.Update(poolConfig(pk, srv.addr()))
			reason, _, _ := strings.Cut(name, "_chunked")
			c := p.metrics.errors.WithLabelValues("llm", srv.addr(), reason)
			require.Eventually(t, func() bool { return testutil.ToFloat64(c) >= 2 }, 5*time.Second, 5*time.Millisecond)
			_, _, ok := endpoint(t, p, srv.addr()).Load()
			assert.False(t, ok, "a failed scrape stores nothing")
		})
	}
}

// TestUpdateKeepsKeptEndpointsAndStopsDroppedScrapers: a reload keeps the
// state and scraper of an endpoint it keeps, stops the scraper of one it
// drops and starts one for a new one.
func TestUpdateKeepsKeptEndpointsAndStopsDroppedScrapers(t *testing.T) {
	body := readTestdata(t, "vllm.txt")
	a, b, c := newFakeServer(t, body), newFakeServer(t, body), newFakeServer(t, body)
	p := newTestPool(t, nil)
	pk := testPicking(config.PickMetricsVLLM)
	p.Update(poolConfig(pk, a.addr(), b.addr()))
	ea := endpoint(t, p, a.addr())
	waitScraped(t, ea)
	waitScraped(t, endpoint(t, p, b.addr()))
	ea.Start()
	defer ea.Done()
	sa := p.scraperOf("llm", a.addr())

	p.Update(poolConfig(pk, a.addr(), c.addr()))
	assert.Same(t, ea, endpoint(t, p, a.addr()), "a kept endpoint keeps its state")
	assert.EqualValues(t, 1, ea.InFlight())
	assert.Same(t, sa, p.scraperOf("llm", a.addr()), "a kept endpoint keeps its scraper")
	assert.Nil(t, p.scraperOf("llm", b.addr()))
	waitScraped(t, endpoint(t, p, c.addr()))
	// A scrape already sent when the scraper was stopped may still land
	// (a loaded machine delays it), within its timeout: count from then.
	time.Sleep(pk.Timeout)
	stopped := b.scrapes.Load()
	time.Sleep(5 * pk.Interval)
	assert.Equal(t, stopped, b.scrapes.Load(), "the dropped endpoint is no longer scraped")

	// A changed scrape setting restarts the scraper on the same state.
	pk2 := *pk
	pk2.Interval = 20 * time.Millisecond
	p.Update(poolConfig(&pk2, a.addr(), c.addr()))
	assert.Same(t, ea, endpoint(t, p, a.addr()))
	assert.NotSame(t, sa, p.scraperOf("llm", a.addr()))

	// Turning scraping off stops every scraper of the backend.
	p.Update(poolConfig(testPicking(config.PickMetricsNone), a.addr(), c.addr()))
	assert.Nil(t, p.scraperOf("llm", a.addr()))
	assert.Nil(t, p.scraperOf("llm", c.addr()))
}

func (p *Pool) scraperOf(backend, addr string) *scraper {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.scrapers[scrapeKey{backend, addr}]
}

func TestCloseStopsEveryScraper(t *testing.T) {
	body := readTestdata(t, "vllm.txt")
	var srvs []*fakeServer
	var addrs []string
	for range 8 {
		s := newFakeServer(t, body)
		srvs = append(srvs, s)
		addrs = append(addrs, s.addr())
	}
	before := runtime.NumGoroutine()
	p := NewPool(nil, nil)
	p.Update(poolConfig(testPicking(config.PickMetricsVLLM), addrs...))
	for _, a := range addrs {
		waitScraped(t, endpoint(t, p, a))
	}
	p.Update(poolConfig(testPicking(config.PickMetricsVLLM), addrs[:3]...))
	p.Close()
	// Every scraper, and the client's connections, end with Close (the
	// servers' own goroutines were counted in before).
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines: %d before the pool, %d after Close:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
	counts := make([]int64, len(srvs))
	for i, s := range srvs {
		counts[i] = s.scrapes.Load()
	}
	time.Sleep(50 * time.Millisecond)
	for i, s := range srvs {
		assert.Equal(t, counts[i], s.scrapes.Load(), "scraped after Close")
	}
	// An Update after Close starts nothing.
	p.Update(poolConfig(testPicking(config.PickMetricsVLLM), addrs...))
	assert.Nil(t, p.scraperOf("llm", addrs[0]))
	require.NotNil(t, p.Backend("llm"))
	p.Close()
}

func TestNewPoolWithoutRegistryOrLogger(t *testing.T) {
	srv := newFakeServer(t, []byte("garbage {\n"))
	p := newTestPool(t, nil)
	p.Update(poolConfig(testPicking(config.PickMetricsVLLM), srv.addr()))
	require.Eventually(t, func() bool { return srv.scrapes.Load() >= 2 }, 5*time.Second, 5*time.Millisecond)
	r := Result{Endpoints: []string{srv.addr()}, Reason: ReasonScore}
	p.Observe("llm", &r)
}

func TestUpdateWithoutConfigDefaultsDoesNotBusyLoop(t *testing.T) {
	srv := newFakeServer(t, readTestdata(t, "vllm.txt"))
	p := newTestPool(t, nil)
	p.Update(poolConfig(&config.Picking{Metrics: config.PickMetricsVLLM, MetricsPath: "/metrics"}, srv.addr()))
	s := p.scraperOf("llm", srv.addr())
	require.NotNil(t, s)
	assert.Equal(t, 50*time.Millisecond, s.spec.interval)
	assert.Equal(t, 50*time.Millisecond, s.spec.timeout)
	waitScraped(t, endpoint(t, p, srv.addr()))
}

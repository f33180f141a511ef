package ratelimit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

// testRedisAddr is the Redis server the tests may use
// (STREAMGATE_TEST_REDIS); without one they skip, or fail under
// STREAMGATE_REQUIRE_ALL=1.
func testRedisAddr(tb testing.TB) string {
	tb.Helper()
	return testEnvAddr(tb, "STREAMGATE_TEST_REDIS", "Redis")
}

// testRedisClusterAddr is a node of the Redis Cluster the tests may use
// (STREAMGATE_TEST_REDIS_CLUSTER), as testRedisAddr.
func testRedisClusterAddr(tb testing.TB) string {
	tb.Helper()
	return testEnvAddr(tb, "STREAMGATE_TEST_REDIS_CLUSTER", "a Redis Cluster")
}

func testEnvAddr(tb testing.TB, name, what string) string {
	tb.Helper()
	addr := os.Getenv(name)
	if addr == "" {
		if os.Getenv("STREAMGATE_REQUIRE_ALL") == "1" {
			tb.Fatalf("%s is unset and STREAMGATE_REQUIRE_ALL=1: %s is required", name, what)
		}
		tb.Skipf("%s is unset: no %s to test against", name, what)
	}
	return addr
}

// newTestRedisStore returns a store on the test server under a key prefix
// of its own, whose keys are deleted when the test ends.
func newTestRedisStore(tb testing.TB, opts RedisOptions) *RedisStore {
	tb.Helper()
	return newTestStoreOn(tb, NewRedisClient(RedisClientOptions{Addr: testRedisAddr(tb), Timeout: time.Second}), opts)
}

// newTestClusterStore is newTestRedisStore on the test cluster.
func newTestClusterStore(tb testing.TB, opts RedisOptions) *RedisStore {
	tb.Helper()
	return newTestStoreOn(tb, NewRedisClient(RedisClientOptions{Addr: testRedisClusterAddr(tb), Cluster: true, Timeout: time.Second}), opts)
}

func newTestStoreOn(tb testing.TB, client redis.UniversalClient, opts RedisOptions) *RedisStore {
	tb.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	opts.KeyPrefix = "sgtest:" + hex.EncodeToString(b[:])
	if opts.Timeout == 0 {
		opts.Timeout = time.Second
	}
	tb.Cleanup(func() {
		ctx := context.Background()
		keys, _ := client.Keys(ctx, opts.KeyPrefix+":*").Result()
		for _, k := range keys {
			client.Del(ctx, k)
		}
		_ = client.Close()
	})
	return NewRedisStore(client, opts)
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := lis.Addr().String()
	require.NoError(t, lis.Close())
	return addr
}

// logLines collects a logger's output.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logLines) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), substr)
}

func TestRedisUsesTheServerClockAndExpiresFullBuckets(t *testing.T) {
	s := newTestRedisStore(t, RedisOptions{})
	ctx := context.Background()
	rule := Rule{Limit: 1000, Period: 1000 * time.Hour}
	d, err := s.Reserve(ctx, []Charge{{Key: "{acme}:tpm", Rule: rule, Cost: 10}})
	require.NoError(t, err)
	require.True(t, d.Allowed)
	assert.Equal(t, int64(990), d.States[0].Remaining)
	assert.Equal(t, 10*time.Hour, d.States[0].Reset, "reset is measured on the server's clock, from the same instant")
	client := s.client.(*redis.Client)
	ttl, err := client.PTTL(ctx, s.prefix+"{acme}:tpm").Result()
	require.NoError(t, err)
	assert.LessOrEqual(t, ttl, 10*time.Hour+time.Millisecond)
	assert.Greater(t, ttl, 9*time.Hour, "the key lives until the bucket is full again")
	// A refund to full deletes the key: an idle tenant costs no memory.
	require.NoError(t, s.Adjust(ctx, []Charge{{Key: "{acme}:tpm", Rule: rule, Cost: -10}}))
	n, err := client.Exists(ctx, s.prefix+"{acme}:tpm").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(0), n)
}

// TestRedisNoOvershootOnTheServerClock races 64 goroutines, each with its
// own connection use, on the production path (server TIME): a period of
// 1000 hours refills far less than one charge while the test runs.
func TestRedisNoOvershootOnTheServerClock(t *testing.T) {
	s := newTestRedisStore(t, RedisOptions{})
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for range 20 {
				d, err := s.Reserve(context.Background(), []Charge{{Key: "{t}:tpm", Rule: Rule{Limit: 1000, Period: 1000 * time.Hour}, Cost: 7}})
				assert.NoError(t, err)
				if d.Allowed {
					admitted.Add(7)
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(1000/7*7), admitted.Load())
}

func TestRedisKeysShareTheTenantsHashSlot(t *testing.T) {
	s := newTestRedisStore(t, RedisOptions{})
	l := New(&config.Limits{Tenants: []config.TenantLimits{{
		Name:   "acme",
		Rates:  config.Rates{RequestsPerMinute: 10, TotalTokensPerMinute: 1000},
		Models: []config.ModelLimits{{Name: "gpt", Rates: config.Rates{InputTokensPerMinute: 500}}},
	}}}, s, SystemClock{}, nil)
	res, h, err := l.Admit(context.Background(), Request{Tenant: "acme", Model: "gpt", Input: 100, Output: 50})
	require.NoError(t, err)
	assert.Equal(t, int64(9), h.Requests.Remaining)
	assert.Equal(t, int64(400), h.Tokens.Remaining, "tightest token bucket: the model's input 500-100")
	keys, err := s.client.(*redis.Client).Keys(context.Background(), s.prefix+"*").Result()
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{s.prefix + "{acme}:rpm", s.prefix + "{acme}:tpm", s.prefix + "{acme}:m:gpt:itpm"}, keys,
		"every key's hash tag is the tenant, so Redis Cluster keeps them in one slot")
	res.Finish(Usage{Input: 100, Output: 50})
}

func TestRedisOutageIsLoggedOnceAndCounted(t *testing.T) {
	logs := &logLines{}
	m := NewStoreMetrics(prometheus.NewRegistry())
	s := NewRedisStore(NewRedisClient(RedisClientOptions{Addr: closedAddr(t), Timeout: 100 * time.Millisecond}),
		RedisOptions{Log: slog.New(slog.NewTextHandler(logs, nil)), Metrics: m})
	for range 5 {
		_, err := s.Reserve(context.Background(), []Charge{{Key: "{t}:rpm", Rule: perMinute(10), Cost: 1}})
		require.ErrorIs(t, err, ErrStoreUnavailable)
	}
	require.ErrorIs(t, s.Adjust(context.Background(), []Charge{{Key: "{t}:rpm", Rule: perMinute(10), Cost: -1}}), ErrStoreUnavailable)
	assert.Equal(t, 1, logs.count("rate limit store unreachable"), "one line per outage, not per call")
	assert.InDelta(t, 6, testutil.ToFloat64(m.errors), 0)
	assert.InDelta(t, 1, testutil.ToFloat64(m.outage), 0)
	// A caller that gave up is not an outage.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Reserve(ctx, []Charge{{Key: "{t}:rpm", Rule: perMinute(10), Cost: 1}})
	require.Error(t, err)
	assert.InDelta(t, 6, testutil.ToFloat64(m.errors), 0)
}

func TestLimiterFailOpenAndClosed(t *testing.T) {
	for name, tc := range map[string]struct {
		failOpen bool
		wantErr  error
	}{
		"fail open admits without charges": {failOpen: true},
		"fail closed refuses with 503":     {failOpen: false, wantErr: ErrStoreUnavailable},
	} {
		t.Run(name, func(t *testing.T) {
			logs := &logLines{}
			s := NewRedisStore(NewRedisClient(RedisClientOptions{Addr: closedAddr(t), Timeout: 100 * time.Millisecond}),
				RedisOptions{FailOpen: tc.failOpen, Log: slog.New(slog.NewTextHandler(logs, nil))})
			cfg := &config.Limits{
				Redis:   &config.Redis{FailOpen: tc.failOpen},
				Queue:   config.Queue{Size: 1, MaxWait: time.Second},
				Tenants: []config.TenantLimits{{Name: "a", Rates: config.Rates{RequestsPerMinute: 1}}},
			}
			m := NewMetrics(prometheus.NewRegistry())
			l := New(cfg, s, newFakeClock(), m)
			for range 3 {
				res, h, err := l.Admit(context.Background(), Request{Tenant: "a", Input: 10})
				if tc.wantErr != nil {
					require.ErrorIs(t, err, tc.wantErr)
					var de *DeniedError
					require.ErrorAs(t, err, &de)
					assert.Equal(t, int64(1), de.RetryAfterSeconds())
					continue
				}
				require.NoError(t, err, "the limit of 1 request per minute is not enforced while Redis is down")
				assert.Nil(t, h.Requests, "no bucket state to report")
				assert.False(t, res.Holds())
				res.Finish(Usage{Input: 10})
			}
			want := map[bool]string{true: "fail_open", false: "fail_closed"}[tc.failOpen]
			assert.Equal(t, 1, logs.count(want))
			denied := 0.0
			if !tc.failOpen {
				denied = 3
			}
			assert.InDelta(t, denied, testutil.ToFloat64(m.deniedTotal.WithLabelValues("store_unavailable")), 0)
		})
	}
}

// flakyProxy forwards TCP to a Redis server and can be cut and restored
// on the same address, as a network outage would.
type flakyProxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	lis    net.Listener
	conns  []net.Conn
}

func newFlakyProxy(t *testing.T, target string) *flakyProxy {
	p := &flakyProxy{t: t, target: target, addr: "127.0.0.1:0"}
	p.up()
	t.Cleanup(p.down)
	return p
}

func (p *flakyProxy) up() {
	lis, err := net.Listen("tcp", p.addr)
	require.NoError(p.t, err)
	p.mu.Lock()
	p.lis, p.addr = lis, lis.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
}

func (p *flakyProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lis != nil {
		_ = p.lis.Close()
		p.lis = nil
	}
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func TestRedisRecoveryEndsTheOutage(t *testing.T) {
	proxy := newFlakyProxy(t, testRedisAddr(t))
	logs := &logLines{}
	m := NewStoreMetrics(prometheus.NewRegistry())
	client := NewRedisClient(RedisClientOptions{Addr: proxy.addr, Timeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = client.Close() })
	s := NewRedisStore(client, RedisOptions{KeyPrefix: "sgtest:recovery", Log: slog.New(slog.NewTextHandler(logs, nil)), Metrics: m})
	one := []Charge{{Key: "{t}:rpm", Rule: Rule{Limit: 1 << 30, Period: time.Hour}, Cost: 1}}
	ctx := context.Background()
	_, err := s.Reserve(ctx, one)
	require.NoError(t, err)
	require.NoError(t, s.Adjust(ctx, []Charge{{Key: "{t}:rpm", Rule: one[0].Rule, Cost: -1}}))

	for outage := 1; outage <= 2; outage++ {
		proxy.down()
		for range 3 {
			_, err = s.Reserve(ctx, one)
			require.ErrorIs(t, err, ErrStoreUnavailable)
		}
		assert.Equal(t, outage, logs.count("rate limit store unreachable"))
		assert.InDelta(t, 1, testutil.ToFloat64(m.outage), 0)
		proxy.up()
		// The client reconnects on the next call; allow it a few tries.
		deadline := time.Now().Add(5 * time.Second)
		for _, err = s.Reserve(ctx, one); err != nil && time.Now().Before(deadline); _, err = s.Reserve(ctx, one) {
			time.Sleep(50 * time.Millisecond)
		}
		require.NoError(t, err)
		assert.Equal(t, outage, logs.count("rate limit store reachable again"))
		assert.InDelta(t, 0, testutil.ToFloat64(m.outage), 0)
		require.NoError(t, s.Adjust(ctx, []Charge{{Key: "{t}:rpm", Rule: one[0].Rule, Cost: -1}}))
	}
	assert.GreaterOrEqual(t, testutil.ToFloat64(m.errors), 6.0)
}

// TestRedisClusterNeedsTheTenantHashTag shows why keys carry the tenant in
// braces: a script's keys must share a slot on a cluster.
func TestRedisClusterNeedsTheTenantHashTag(t *testing.T) {
	s := newTestClusterStore(t, RedisOptions{})
	ctx := context.Background()
	_, err := s.Reserve(ctx, []Charge{{Key: "{a}:rpm", Rule: perMinute(10), Cost: 1}, {Key: "{b}:rpm", Rule: perMinute(10), Cost: 1}})
	require.ErrorIs(t, err, ErrStoreUnavailable)
	assert.Contains(t, err.Error(), "CROSSSLOT")
	l := New(&config.Limits{Tenants: []config.TenantLimits{{
		Name:   "acme",
		Rates:  config.Rates{RequestsPerMinute: 10, TotalTokensPerMinute: 1000},
		Models: []config.ModelLimits{{Name: "gpt", Rates: config.Rates{InputTokensPerMinute: 500}}},
	}}}, s, SystemClock{}, nil)
	res, h, err := l.Admit(ctx, Request{Tenant: "acme", Model: "gpt", Input: 100, Output: 50})
	require.NoError(t, err, "a request's tenant and tenant × model keys share the tenant's slot")
	assert.Equal(t, int64(9), h.Requests.Remaining)
	assert.Equal(t, int64(400), h.Tokens.Remaining)
	res.Finish(Usage{Input: 60, Output: 50})
	d, err := s.Reserve(ctx, []Charge{{Key: "{acme}:m:gpt:itpm", Rule: perMinute(500), Cost: 0}})
	require.NoError(t, err)
	assert.Equal(t, int64(440), d.States[0].Remaining, "reconciled on the cluster: 60 of 500 used")
}

// TestNewRedisClientPicksTheClientKind: one constructor, go-redis's
// universal client, gives a single-server client or a cluster client.
func TestNewRedisClientPicksTheClientKind(t *testing.T) {
	single := NewRedisClient(RedisClientOptions{Addr: "127.0.0.1:1", DB: 2, Timeout: time.Second})
	t.Cleanup(func() { _ = single.Close() })
	require.IsType(t, &redis.Client{}, single)
	assert.Equal(t, 2, single.(*redis.Client).Options().DB)
	// No retries (a retried script could charge twice): -1, read back as 0.
	assert.LessOrEqual(t, single.(*redis.Client).Options().MaxRetries, 0)
	cluster := NewRedisClient(RedisClientOptions{Addr: "127.0.0.1:1", Cluster: true, Timeout: time.Second})
	t.Cleanup(func() { _ = cluster.Close() })
	require.IsType(t, &redis.ClusterClient{}, cluster)
	assert.LessOrEqual(t, cluster.(*redis.ClusterClient).Options().MaxRetries, 0)
}

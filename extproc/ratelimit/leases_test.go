package ratelimit

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
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

// onEachRedis runs f against the test Redis server and the test cluster.
func onEachRedis(t *testing.T, f func(t *testing.T, newStore func() *RedisStore)) {
	t.Run("server", func(t *testing.T) {
		f(t, func() *RedisStore { return newTestRedisStore(t, RedisOptions{}) })
	})
	t.Run("cluster", func(t *testing.T) {
		f(t, func() *RedisStore { return newTestClusterStore(t, RedisOptions{}) })
	})
}

const testTTL = 5 * time.Second

// TestLeaseScriptsCapAndExpire: a pool admits its limit across replicas;
// a replica's release frees only what it holds; a replica that stops
// renewing loses its slots once its TTL passes, and one that renews keeps
// them (on a fake clock passed to the scripts).
func TestLeaseScriptsCapAndExpire(t *testing.T) {
	onEachRedis(t, func(t *testing.T, newStore func() *RedisStore) {
		s := newStore()
		clock := newFakeClock()
		s.clock = clock
		ctx := context.Background()
		pool := []leasePool{{key: s.prefix + "c:{acme}", limit: 3}}
		take := func(replica string) bool {
			ok, at, why, err := s.acquireLeases(ctx, replica, "acme", testTTL, leaseDemand, false, pool)
			require.NoError(t, err)
			if !ok {
				assert.Equal(t, 0, at)
				assert.Equal(t, refusedFull, why)
			}
			return ok
		}
		held := func() int {
			n, mine, err := s.poolHeld(ctx, pool[0].key, "acme")
			require.NoError(t, err)
			assert.Equal(t, n, mine, "one tenant's pool")
			return n
		}
		require.True(t, take("r1"))
		require.True(t, take("r1"))
		require.True(t, take("r2"))
		assert.False(t, take("r2"), "the cap holds across replicas")
		require.NoError(t, s.releaseLeases(ctx, "r2", "acme", pool))
		require.NoError(t, s.releaseLeases(ctx, "r2", "acme", pool), "r2 holds nothing more: a second release changes nothing")
		assert.Equal(t, 2, held())
		require.True(t, take("r3"))
		assert.Equal(t, 3, held())

		// r1 renews half way through; r3 does not.
		clock.Advance(testTTL / 2)
		require.NoError(t, s.heartbeatLeases(ctx, "r1", pool[0].key, testTTL, map[string]int{"acme": 2}))
		clock.Advance(testTTL/2 + time.Millisecond)
		assert.True(t, take("r2"), "r3's lease expired")
		assert.False(t, take("r2"), "r1's two slots are still held")
		assert.Equal(t, 3, held())

		// A release whose reply was lost: the heartbeat sets Redis to the
		// replica's own count.
		require.NoError(t, s.heartbeatLeases(ctx, "r1", pool[0].key, testTTL, map[string]int{"acme": 1}))
		assert.Equal(t, 2, held())
		require.NoError(t, s.heartbeatLeases(ctx, "r1", pool[0].key, testTTL, map[string]int{"acme": 0}))
		require.NoError(t, s.heartbeatLeases(ctx, "r2", pool[0].key, testTTL, map[string]int{"acme": 0}))
		assert.Equal(t, 0, held(), "nothing left")
	})
}

// TestLeaseScriptsFairShare: a backend pool full of tenant A's streams
// serves tenant B, once it waits, before A gets more than its half.
func TestLeaseScriptsFairShare(t *testing.T) {
	onEachRedis(t, func(t *testing.T, newStore func() *RedisStore) {
		s := newStore()
		s.clock = newFakeClock()
		ctx := context.Background()
		pool := []leasePool{{key: s.prefix + "b:{vllm}", limit: 4, fair: true}}
		take := func(replica, tenant string) (bool, int) {
			ok, _, why, err := s.acquireLeases(ctx, replica, tenant, testTTL, leaseDemand, true, pool)
			require.NoError(t, err)
			return ok, why
		}
		for range 4 {
			ok, _ := take("r1", "a")
			require.True(t, ok, "alone, A may fill the pool")
		}
		ok, why := take("r2", "b")
		require.False(t, ok)
		assert.Equal(t, refusedFull, why)
		require.NoError(t, s.releaseLeases(ctx, "r1", "a", pool))
		ok, why = take("r3", "a")
		assert.False(t, ok, "A holds 3, over its share of 2 while B waits")
		assert.Equal(t, refusedShare, why)
		ok, _ = take("r2", "b")
		assert.True(t, ok, "B gets the freed slot")
		// Once B's demand lapses, A may use the pool again.
		s.clock.(*fakeClock).Advance(leaseDemand + time.Millisecond)
		require.NoError(t, s.releaseLeases(ctx, "r1", "a", pool))
		ok, _ = take("r3", "a")
		assert.True(t, ok, "nobody else waits")
	})
}

// TestLeasesSharedAcrossReplicas: three replicas' Leases on one Redis hold
// at most the cap between them under contention, a waiter on one replica
// is admitted when another frees a slot, and everything is released.
func TestLeasesSharedAcrossReplicas(t *testing.T) {
	onEachRedis(t, func(t *testing.T, newStore func() *RedisStore) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		const limit, workers = 4, 24
		var leases []*Leases
		prefix := ""
		for range 3 {
			s := newStore()
			if prefix == "" {
				prefix = s.prefix
			}
			s.prefix = prefix // the three stores share the first's keys
			leases = append(leases, s.ShareConcurrency(ctx, LeaseOptions{TTL: testTTL}))
		}
		slots := []Slot{{Key: "c:{acme}", Limit: limit, owner: "acme"}, {Key: "b:vllm", Limit: 100, Backend: true, owner: "vllm"}}
		var open, peak, admitted atomic.Int64
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				l := leases[w%3]
				for range 5 {
					release, err := l.Acquire(ctx, "acme", slots, 1000, 5*time.Second)
					if !assert.NoError(t, err) {
						return
					}
					n := open.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					time.Sleep(2 * time.Millisecond)
					open.Add(-1)
					release()
					release() // exactly once
					admitted.Add(1)
				}
			})
		}
		wg.Wait()
		assert.EqualValues(t, workers*5, admitted.Load())
		assert.LessOrEqual(t, peak.Load(), int64(limit), "never more than the cap at once across replicas")
		total, _, err := leases[0].store.poolHeld(ctx, leases[0].store.prefix+"c:{acme}", "acme")
		require.NoError(t, err)
		assert.Zero(t, total, "every slot released")
		for _, l := range leases {
			assert.Zero(t, l.Waiting())
			assert.InDelta(t, 0, testutil.ToFloat64(l.held), 0)
		}
	})
}

// TestLeasesWaitIsBoundedAndRefusesWithTheBlockingPool: a request that
// never gets the backend's slot is refused after max_wait with the
// backend's refusal (503), and holds no tenant slot meanwhile.
func TestLeasesWaitIsBoundedAndRefusesWithTheBlockingPool(t *testing.T) {
	s := newTestRedisStore(t, RedisOptions{})
	ctx := context.Background()
	l := s.ShareConcurrency(ctx, LeaseOptions{TTL: testTTL})
	slots := []Slot{{Key: "c:{acme}", Limit: 5, owner: "acme"}, {Key: "b:vllm", Limit: 1, Backend: true, owner: "vllm"}}
	release, err := l.Acquire(ctx, "acme", slots, 10, time.Second)
	require.NoError(t, err)
	start := time.Now()
	_, err = l.Acquire(ctx, "acme", slots, 10, 200*time.Millisecond)
	assert.ErrorIs(t, err, ErrBackendBusy)
	assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
	total, _, err := s.poolHeld(ctx, s.prefix+"c:{acme}", "acme")
	require.NoError(t, err)
	assert.Equal(t, 1, total, "the refused request left no tenant slot behind")
	_, err = l.Acquire(ctx, "acme", slots, 0, time.Second)
	assert.ErrorIs(t, err, ErrBackendBusy, "a full queue refuses at once")
	release()
}

// TestLeasesUnreachableRedis: fail closed refuses with ErrStoreUnavailable;
// fail open serves from the per-process gate, whose slots free normally.
func TestLeasesUnreachableRedis(t *testing.T) {
	for _, open := range []bool{false, true} {
		client := NewRedisClient(RedisClientOptions{Addr: closedAddr(t), Timeout: 50 * time.Millisecond})
		t.Cleanup(func() { _ = client.Close() })
		s := NewRedisStore(client, RedisOptions{FailOpen: open, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: NewStoreMetrics(prometheus.NewRegistry())})
		l := s.ShareConcurrency(t.Context(), LeaseOptions{TTL: testTTL})
		gate := NewGate(SystemClock{}, 10, time.Second)
		l.configure(gate, func(s Slot) int { return s.Limit })
		slots := []Slot{{Key: "c:{acme}", Limit: 1, owner: "acme"}}
		release, err := l.Acquire(context.Background(), "acme", slots, 10, 100*time.Millisecond)
		if !open {
			assert.ErrorIs(t, err, ErrStoreUnavailable)
			continue
		}
		require.NoError(t, err)
		_, err = l.Acquire(context.Background(), "acme", slots, 10, 100*time.Millisecond)
		var de *DeniedError
		require.True(t, errors.As(err, &de), "%v", err)
		assert.ErrorIs(t, err, ErrTenantBusy, "the per-process cap applies")
		release()
		release2, err := l.Acquire(context.Background(), "acme", slots, 10, 100*time.Millisecond)
		require.NoError(t, err, "the local slot was freed")
		release2()
		assert.InDelta(t, 3, testutil.ToFloat64(l.fallback), 0)
	}
}

// TestLeasesOfAStoppedReplicaReturnWithinTheTTL: a replica that stops
// renewing (crashed) loses its slots within the TTL; one that renews
// keeps them however long its streams last.
func TestLeasesOfAStoppedReplicaReturnWithinTheTTL(t *testing.T) {
	onEachRedis(t, func(t *testing.T, newStore func() *RedisStore) {
		const ttl = 500 * time.Millisecond
		slots := []Slot{{Key: "c:{acme}", Limit: 2, owner: "acme"}}
		s1, s2 := newStore(), newStore()
		s2.prefix = s1.prefix
		live, stop := context.WithCancel(context.Background())
		defer stop()
		l1 := s1.ShareConcurrency(live, LeaseOptions{TTL: ttl})
		l2 := s2.ShareConcurrency(t.Context(), LeaseOptions{TTL: ttl})
		for range 2 {
			_, err := l1.Acquire(context.Background(), "acme", slots, 10, time.Second)
			require.NoError(t, err)
		}
		_, err := l2.Acquire(context.Background(), "acme", slots, 10, 3*ttl)
		require.ErrorIs(t, err, ErrTenantBusy, "a live replica keeps its slots past the TTL")

		stop() // l1 stops renewing, as if killed
		start := time.Now()
		release, err := l2.Acquire(context.Background(), "acme", slots, 10, 5*ttl)
		require.NoError(t, err)
		waited := time.Since(start)
		t.Logf("slots of the stopped replica back after %v (TTL %v, heartbeat every %v)", waited, ttl, ttl/leaseBeats)
		assert.Less(t, waited, ttl+leasePoll+200*time.Millisecond, "within the TTL and a poll")
		release()
	})
}

// TestLeasesHeartbeatCorrectsALostRelease: a release that did not reach
// Redis is set right by the next heartbeat.
func TestLeasesHeartbeatCorrectsALostRelease(t *testing.T) {
	s := newTestRedisStore(t, RedisOptions{})
	ctx := context.Background()
	l := s.ShareConcurrency(ctx, LeaseOptions{TTL: time.Hour})
	slots := []Slot{{Key: "c:{acme}", Limit: 2, owner: "acme"}}
	release, err := l.Acquire(ctx, "acme", slots, 10, time.Second)
	require.NoError(t, err)
	good := s.client
	s.client = NewRedisClient(RedisClientOptions{Addr: closedAddr(t), Timeout: 50 * time.Millisecond})
	release() // lost
	s.client = good
	total, _, err := s.poolHeld(ctx, s.prefix+"c:{acme}", "acme")
	require.NoError(t, err)
	require.Equal(t, 1, total, "Redis still counts the slot")
	l.Heartbeat(ctx)
	total, _, err = s.poolHeld(ctx, s.prefix+"c:{acme}", "acme")
	require.NoError(t, err)
	assert.Zero(t, total, "the heartbeat set it to this replica's count")
	l.Heartbeat(ctx)
	l.mu.Lock()
	assert.Empty(t, l.pools, "an idle pool is forgotten")
	l.mu.Unlock()
}

// TestLimiterOnLeasesFailsOpenFromTheStart: a Limiter built on a store
// sharing concurrency serves from its own gate during an outage before any
// reload (New configures the leases, not only Activate), and a Redis that
// hangs costs each call its timeout, not more.
func TestLimiterOnLeasesFailsOpenFromTheStart(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	require.NoError(t, err)
	defer lis.Close()
	client := NewRedisClient(RedisClientOptions{Addr: lis.Addr().String(), Timeout: 100 * time.Millisecond})
	t.Cleanup(func() { _ = client.Close() })
	s := NewRedisStore(client, RedisOptions{FailOpen: true, Timeout: 100 * time.Millisecond, Log: slog.New(slog.DiscardHandler)})
	s.ShareConcurrency(t.Context(), LeaseOptions{TTL: time.Second})
	cfg := &config.Limits{Store: config.LimitStoreRedis, Redis: &config.Redis{FailOpen: true}, Queue: config.Queue{Size: 10, MaxWait: time.Second},
		Tenants:  []config.TenantLimits{{Name: "acme", Rates: config.Rates{ConcurrentStreams: 1}}},
		Backends: []config.BackendLimits{{Name: "vllm", MaxInFlight: 6}}}
	l := New(cfg, s, SystemClock{}, nil)
	start := time.Now()
	h, err := l.HoldTenant(t.Context(), "acme")
	require.NoError(t, err)
	res, _, err := l.Admit(t.Context(), Request{Tenant: "acme", Backend: "vllm", Hold: h})
	require.NoError(t, err)
	assert.Less(t, time.Since(start), 600*time.Millisecond, "two calls of 100 ms (and a heartbeat's) at most")
	_, err = l.HoldTenant(t.Context(), "acme")
	assert.ErrorIs(t, err, ErrTenantBusy, "the per-process cap of 1")
	res.Finish(Usage{})
	h, err = l.HoldTenant(t.Context(), "acme")
	require.NoError(t, err, "freed in the process's gate")
	h.Release()
}

// TestReloadRaisesASharedCapForWaitingRequests: a raised cap admits a
// request already waiting for a lease (a reload's Activate).
func TestReloadRaisesASharedCapForWaitingRequests(t *testing.T) {
	s := newTestRedisStore(t, RedisOptions{})
	s.ShareConcurrency(t.Context(), LeaseOptions{TTL: testTTL})
	limits := func(n int) *config.Limits {
		return &config.Limits{Store: config.LimitStoreRedis, Redis: &config.Redis{}, Queue: config.Queue{Size: 10, MaxWait: 5 * time.Second},
			Tenants: []config.TenantLimits{{Name: "acme", Rates: config.Rates{ConcurrentStreams: n}}}}
	}
	l := New(limits(1), s, SystemClock{}, nil)
	first, err := l.HoldTenant(t.Context(), "acme")
	require.NoError(t, err)
	got := make(chan error, 1)
	go func() {
		h, err := l.HoldTenant(t.Context(), "acme")
		h.Release()
		got <- err
	}()
	require.Eventually(t, func() bool { return l.Waiting() == 1 }, time.Second, 5*time.Millisecond)
	l.Reconfigured(limits(2)).Activate()
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-time.After(2 * time.Second):
		t.Fatal("the raised cap did not admit the waiting request")
	}
	first.Release()
}

func BenchmarkLeases(b *testing.B) {
	for _, kind := range []string{"server", "cluster"} {
		b.Run(kind, func(b *testing.B) {
			var s *RedisStore
			if kind == "server" {
				s = newTestRedisStore(b, RedisOptions{})
			} else {
				s = newTestClusterStore(b, RedisOptions{})
			}
			l := s.ShareConcurrency(b.Context(), LeaseOptions{TTL: testTTL})
			slots := []Slot{{Key: "c:{acme}", Limit: 1 << 20, owner: "acme"}, {Key: "b:vllm", Limit: 1 << 20, Backend: true, owner: "vllm"}}
			b.ReportAllocs()
			for b.Loop() {
				release, err := l.Acquire(b.Context(), "acme", slots, 10, time.Second)
				if err != nil {
					b.Fatal(err)
				}
				release()
			}
		})
	}
}

// TestLeasesLaneIsFIFOAndSharesItsRefusal: requests of one tenant waiting
// for the same slots are admitted in arrival order, only the head asking
// Redis, and those that give up are told the head's reason (the backend's
// 503, not the tenant's 429).
func TestLeasesLaneIsFIFOAndSharesItsRefusal(t *testing.T) {
	s := newTestRedisStore(t, RedisOptions{})
	l := s.ShareConcurrency(t.Context(), LeaseOptions{TTL: testTTL})
	slots := []Slot{{Key: "c:{acme}", Limit: 10, owner: "acme"}, {Key: "b:vllm", Limit: 1, Backend: true, owner: "vllm"}}
	first, err := l.Acquire(t.Context(), "acme", slots, 10, time.Second)
	require.NoError(t, err)
	order := make(chan int, 3)
	for i := range 3 {
		go func() {
			release, err := l.Acquire(t.Context(), "acme", slots, 10, 5*time.Second)
			if assert.NoError(t, err) {
				order <- i
				time.Sleep(10 * time.Millisecond)
				release()
			}
		}()
		require.Eventually(t, func() bool { return l.Waiting() == i+1 }, time.Second, time.Millisecond)
	}
	first()
	for i := range 3 {
		assert.Equal(t, i, <-order, "arrival order")
	}

	hold, err := l.Acquire(t.Context(), "acme", slots, 10, time.Second)
	require.NoError(t, err)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := l.Acquire(t.Context(), "acme", slots, 10, 150*time.Millisecond)
			errs <- err
		}()
	}
	for range 2 {
		assert.ErrorIs(t, <-errs, ErrBackendBusy)
	}
	hold()
}

// TestLeaseScriptsAgainstAModel runs random acquires, releases,
// heartbeats and clock jumps of three replicas and three tenants on one
// fair pool, checking Redis after each step against a model of the
// scripts: live replicas' counts only, aggregates that add up, never more
// granted than the limit.
func TestLeaseScriptsAgainstAModel(t *testing.T) {
	s := newTestRedisStore(t, RedisOptions{})
	clock := newFakeClock()
	s.clock = clock
	ctx := context.Background()
	const limit = 5
	pool := []leasePool{{key: s.prefix + "b:{model}", limit: limit, fair: true}}
	replicas, tenants := []string{"r0", "r1", "r2"}, []string{"a", "b", "c"}
	held := map[string]map[string]int{} // replica -> tenant -> slots
	expiry := map[string]time.Time{}
	prune := func() {
		for r, at := range expiry {
			if !at.After(clock.Now()) {
				delete(held, r)
				delete(expiry, r)
			}
		}
	}
	rng := newTestRand(7)
	for step := range 600 {
		r, tn := replicas[rng.IntN(3)], tenants[rng.IntN(3)]
		switch op := rng.IntN(10); {
		case op < 5:
			ok, _, _, err := s.acquireLeases(ctx, r, tn, testTTL, leaseDemand, false, pool)
			require.NoError(t, err)
			prune()
			total := 0
			for _, m := range held {
				for _, c := range m {
					total += c
				}
			}
			if total >= limit {
				require.False(t, ok, "step %d: granted over the limit", step)
			}
			if ok {
				if held[r] == nil {
					held[r] = map[string]int{}
				}
				held[r][tn]++
				expiry[r] = clock.Now().Add(testTTL)
			}
		case op < 8:
			require.NoError(t, s.releaseLeases(ctx, r, tn, pool))
			if held[r][tn] > 0 {
				held[r][tn]--
			}
		case op < 9:
			counts := map[string]int{}
			for _, x := range tenants {
				counts[x] = held[r][x]
			}
			require.NoError(t, s.heartbeatLeases(ctx, r, pool[0].key, testTTL, counts))
			prune()
			if held[r] == nil {
				held[r] = map[string]int{}
			}
			n := 0
			for x, c := range counts {
				held[r][x] = c
				n += c
			}
			if n > 0 {
				expiry[r] = clock.Now().Add(testTTL)
			} else {
				delete(held, r)
				delete(expiry, r)
			}
		default:
			clock.Advance(time.Duration(rng.IntN(3000)) * time.Millisecond)
		}
		checkPool(t, s, pool[0].key, held, step)
	}
}

// checkPool compares the pool's hash with the model's live holdings,
// except for replicas the scripts have not pruned yet (expired in the
// model only when a script ran since).
func checkPool(t *testing.T, s *RedisStore, key string, held map[string]map[string]int, step int) {
	t.Helper()
	c := s.client.(interface {
		HGetAll(ctx context.Context, key string) *redis.MapStringStringCmd
	})
	fields, err := c.HGetAll(context.Background(), key+":h").Result()
	require.NoError(t, err)
	per, tenantSum := map[string]int{}, map[string]int{}
	for f, v := range fields {
		x, err := strconv.Atoi(v)
		require.NoError(t, err)
		require.Positive(t, x, "step %d: field %s is %d", step, f, x)
		switch {
		case strings.HasPrefix(f, "t|"):
			tenantSum[f[2:]] -= x
		case strings.HasPrefix(f, "r|"):
			rest := f[2:]
			i := strings.LastIndex(rest, "|")
			per[rest] = x
			tenantSum[rest[i+1:]] += x
		}
	}
	for tn, d := range tenantSum {
		require.Zero(t, d, "step %d: t|%s is not the sum of the replicas' counts", step, tn)
	}
	want := map[string]int{}
	for r, m := range held {
		for tn, x := range m {
			if x > 0 {
				want[r+"|"+tn] = x
			}
		}
	}
	require.Equal(t, want, per, "step %d", step)
	total := 0
	for _, x := range per {
		total += x
	}
	require.Equal(t, total, atoiOr0(fields["n"]), "step %d: n", step)
}

func atoiOr0(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func newTestRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 1)) }

// TestLeasesFreedOnAnotherReplicaWakeWaiters: a slot freed on one replica
// is published, and a request waiting on another is admitted without
// polling (its clock is stopped, so no poll timer ever fires).
func TestLeasesFreedOnAnotherReplicaWakeWaiters(t *testing.T) {
	onEachRedis(t, func(t *testing.T, newStore func() *RedisStore) {
		s1, s2 := newStore(), newStore()
		s2.prefix = s1.prefix
		l1 := s1.ShareConcurrency(t.Context(), LeaseOptions{TTL: testTTL})
		l2 := s2.ShareConcurrency(t.Context(), LeaseOptions{TTL: testTTL})
		l2.clock = newFakeClock()
		time.Sleep(100 * time.Millisecond) // the subscriptions are up
		slots := []Slot{{Key: "c:{acme}", Limit: 10, owner: "acme"}, {Key: "b:vllm", Limit: 1, Backend: true, owner: "vllm"}}
		release, err := l1.Acquire(t.Context(), "acme", slots, 10, time.Second)
		require.NoError(t, err)
		got := make(chan error, 1)
		go func() {
			r, err := l2.Acquire(t.Context(), "acme", slots, 10, time.Hour)
			if err == nil {
				r()
			}
			got <- err
		}()
		require.Eventually(t, func() bool { return l2.Waiting() == 1 }, time.Second, time.Millisecond)
		freed := time.Now()
		release()
		select {
		case err := <-got:
			require.NoError(t, err)
			t.Logf("admitted on the other replica %v after the release", time.Since(freed))
		case <-time.After(3 * time.Second):
			t.Fatal("the waiter on the other replica was not woken")
		}
	})
}

package ratelimit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

var perMinute = func(n int64) Rule { return Rule{Limit: n, Period: time.Minute} }

// forEachStore runs a contract test against every Store: the memory store
// and the Redis store, on one server (STREAMGATE_TEST_REDIS) and on a
// cluster (STREAMGATE_TEST_REDIS_CLUSTER), driven by the same fake clock.
func forEachStore(t *testing.T, test func(t *testing.T, s Store, clk *fakeClock)) {
	t.Helper()
	t.Run("memory", func(t *testing.T) {
		clk := newFakeClock()
		test(t, NewMemoryStore(clk), clk)
	})
	t.Run("redis", func(t *testing.T) {
		clk := newFakeClock()
		s := newTestRedisStore(t, RedisOptions{})
		s.clock, s.ttlSlack = clk, time.Hour
		test(t, s, clk)
	})
	t.Run("redis-cluster", func(t *testing.T) {
		clk := newFakeClock()
		s := newTestClusterStore(t, RedisOptions{})
		s.clock, s.ttlSlack = clk, time.Hour
		test(t, s, clk)
	})
}

func TestStoreAllowsTheLimitThenRefillsLinearly(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, clk *fakeClock) {
		ctx := context.Background()
		one := []Charge{{Key: "{t}:k", Rule: perMinute(60), Cost: 1}}
		for i := range 60 {
			d, err := s.Reserve(ctx, one)
			require.NoError(t, err)
			require.True(t, d.Allowed, "request %d of 60", i+1)
			assert.Equal(t, int64(59-i), d.States[0].Remaining)
			assert.Equal(t, time.Duration(i+1)*time.Second, d.States[0].Reset)
			assert.Equal(t, int64(60), d.States[0].Limit)
		}
		d, err := s.Reserve(ctx, one)
		require.NoError(t, err)
		require.False(t, d.Allowed)
		assert.Equal(t, time.Second, d.RetryAfter, "one unit refills every second")
		assert.Equal(t, int64(0), d.States[0].Remaining)
		clk.Advance(999 * time.Millisecond)
		d, _ = s.Reserve(ctx, one)
		assert.False(t, d.Allowed)
		assert.Equal(t, time.Millisecond, d.RetryAfter)
		clk.Advance(time.Millisecond)
		d, _ = s.Reserve(ctx, one)
		assert.True(t, d.Allowed)
	})
}

func TestStoreReservesAllOrNothing(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, _ *fakeClock) {
		ctx := context.Background()
		_, err := s.Reserve(ctx, []Charge{{Key: "{t}:tokens", Rule: perMinute(1000), Cost: 900}})
		require.NoError(t, err)
		d, err := s.Reserve(ctx, []Charge{
			{Key: "{t}:requests", Rule: perMinute(10), Cost: 1},
			{Key: "{t}:tokens", Rule: perMinute(1000), Cost: 200},
		})
		require.NoError(t, err)
		require.False(t, d.Allowed)
		assert.Equal(t, 6*time.Second, d.RetryAfter, "100 tokens over at 60 ms each")
		assert.Equal(t, int64(10), d.States[0].Remaining, "the request bucket was not charged")
		assert.Equal(t, int64(100), d.States[1].Remaining)
		d, _ = s.Reserve(ctx, []Charge{{Key: "{t}:requests", Rule: perMinute(10), Cost: 1}, {Key: "{t}:tokens", Rule: perMinute(1000), Cost: 100}})
		assert.True(t, d.Allowed)
		assert.Equal(t, int64(9), d.States[0].Remaining)
		assert.Equal(t, int64(0), d.States[1].Remaining)
	})
}

func TestStoreChargeLargerThanLimitNeverFits(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, _ *fakeClock) {
		d, err := s.Reserve(context.Background(), []Charge{{Key: "{t}:k", Rule: perMinute(100), Cost: 101}})
		require.NoError(t, err)
		assert.False(t, d.Allowed)
		assert.Equal(t, int64(100), d.States[0].Remaining)
		assert.Equal(t, 600*time.Millisecond, d.RetryAfter, "never fits: retrying tells the client its overshoot")
	})
}

func TestStoreAdjustRefundsAndCharges(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, _ *fakeClock) {
		ctx := context.Background()
		rule := perMinute(1000)
		_, _ = s.Reserve(ctx, []Charge{{Key: "{t}:k", Rule: rule, Cost: 800}})
		require.NoError(t, s.Adjust(ctx, []Charge{{Key: "{t}:k", Rule: rule, Cost: -500}}))
		d, _ := s.Reserve(ctx, []Charge{{Key: "{t}:k", Rule: rule, Cost: 0}})
		assert.Equal(t, int64(700), d.States[0].Remaining)
		// Charging past the limit puts the bucket in debt: nothing fits until it refills.
		require.NoError(t, s.Adjust(ctx, []Charge{{Key: "{t}:k", Rule: rule, Cost: 1300}}))
		d, _ = s.Reserve(ctx, []Charge{{Key: "{t}:k", Rule: rule, Cost: 1}})
		assert.False(t, d.Allowed)
		assert.Equal(t, 36*time.Second+60*time.Millisecond, d.RetryAfter, "1600 used of 1000: 600+1 tokens at 60 ms each")
		assert.Equal(t, int64(0), d.States[0].Remaining)
		assert.Equal(t, 96*time.Second, d.States[0].Reset, "1600 tokens take 96 s to refill")
		// A refund larger than what is used leaves the bucket full, not fuller.
		require.NoError(t, s.Adjust(ctx, []Charge{{Key: "{t}:k", Rule: rule, Cost: -1_000_000}}))
		d, _ = s.Reserve(ctx, []Charge{{Key: "{t}:k", Rule: rule, Cost: 1000}})
		assert.True(t, d.Allowed)
		d, _ = s.Reserve(ctx, []Charge{{Key: "{t}:k", Rule: rule, Cost: 1}})
		assert.False(t, d.Allowed)
	})
}

func TestStoreBucketsAreIndependent(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, clk *fakeClock) {
		ctx := context.Background()
		d, _ := s.Reserve(ctx, []Charge{{Key: "{a}:rpm", Rule: perMinute(1), Cost: 1}})
		require.True(t, d.Allowed)
		d, _ = s.Reserve(ctx, []Charge{{Key: "{b}:rpm", Rule: perMinute(1), Cost: 1}})
		assert.True(t, d.Allowed, "another key has its own bucket")
		d, _ = s.Reserve(ctx, []Charge{{Key: "{a}:rpm", Rule: perMinute(1), Cost: 1}})
		assert.False(t, d.Allowed)
		clk.Advance(time.Hour)
		d, _ = s.Reserve(ctx, []Charge{{Key: "{a}:rpm", Rule: perMinute(1), Cost: 1}})
		assert.True(t, d.Allowed, "a bucket idle for longer than its period is full, not in credit")
		d, _ = s.Reserve(ctx, []Charge{{Key: "{a}:rpm", Rule: perMinute(1), Cost: 1}})
		assert.False(t, d.Allowed)
	})
}

// TestStoreNoOvershootUnderConcurrency races 64 goroutines for one limit:
// the admitted total must equal the limit exactly.
func TestStoreNoOvershootUnderConcurrency(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, _ *fakeClock) {
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				for range 20 {
					d, err := s.Reserve(context.Background(), []Charge{
						{Key: "{t}:rpm", Rule: perMinute(1 << 20), Cost: 1},
						{Key: "{t}:tpm", Rule: perMinute(1000), Cost: 7},
					})
					assert.NoError(t, err)
					if d.Allowed {
						admitted.Add(7)
					}
				}
			})
		}
		wg.Wait()
		assert.Equal(t, int64(1000/7*7), admitted.Load())
	})
}

func BenchmarkReserve(b *testing.B) {
	charges := []Charge{
		{Key: "{t}:rpm", Rule: perMinute(1 << 40), Cost: 1},
		{Key: "{t}:itpm", Rule: perMinute(1 << 40), Cost: 300},
		{Key: "{t}:tpm", Rule: perMinute(1 << 40), Cost: 556},
	}
	run := func(b *testing.B, s Store) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Reserve(context.Background(), charges); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("memory", func(b *testing.B) { run(b, NewMemoryStore(SystemClock{})) })
	b.Run("redis", func(b *testing.B) { run(b, newTestRedisStore(b, RedisOptions{})) })
}

// BenchmarkAdmit is one request's whole admission on each store: Admit
// (requests, input and total tokens for the tenant, total tokens for the
// tenant × model) and Finish with a reconciliation that refunds.
func BenchmarkAdmit(b *testing.B) {
	cfg := &config.Limits{
		Queue: config.Queue{Size: 1, MaxWait: time.Second},
		Tenants: []config.TenantLimits{{
			Name:   "acme",
			Rates:  config.Rates{RequestsPerMinute: 1 << 40, InputTokensPerMinute: 1 << 40, TotalTokensPerMinute: 1 << 40},
			Models: []config.ModelLimits{{Name: "gpt", Rates: config.Rates{TotalTokensPerMinute: 1 << 40}}},
		}},
	}
	run := func(b *testing.B, s Store) {
		l := New(cfg, s, SystemClock{}, nil)
		req := Request{Tenant: "acme", Model: "gpt", Input: 300, Output: 256}
		b.ReportAllocs()
		for b.Loop() {
			res, _, err := l.Admit(context.Background(), req)
			if err != nil {
				b.Fatal(err)
			}
			res.Finish(Usage{Input: 300, Output: 100})
		}
	}
	b.Run("memory", func(b *testing.B) { run(b, NewMemoryStore(SystemClock{})) })
	b.Run("redis", func(b *testing.B) { run(b, newTestRedisStore(b, RedisOptions{})) })
}

package budget

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/extproc/ratelimit"
)

// forEachStore runs a contract test against the memory store and the
// Redis store on one server (STREAMGATE_TEST_REDIS) and on a cluster
// (STREAMGATE_TEST_REDIS_CLUSTER).
func forEachStore(t *testing.T, test func(t *testing.T, s Store)) {
	t.Helper()
	t.Run("memory", func(t *testing.T) { test(t, NewMemoryStore(nil)) })
	t.Run("redis", func(t *testing.T) {
		test(t, newTestRedisStore(t, "STREAMGATE_TEST_REDIS", false))
	})
	t.Run("redis-cluster", func(t *testing.T) {
		test(t, newTestRedisStore(t, "STREAMGATE_TEST_REDIS_CLUSTER", true))
	})
}

// newTestRedisStore is a store under a key prefix of its own on the
// Redis named by env, whose keys are deleted when the test ends; it
// fails without one when STREAMGATE_REQUIRE_ALL=1.
func newTestRedisStore(tb testing.TB, env string, cluster bool) *RedisStore {
	tb.Helper()
	addr := os.Getenv(env)
	if addr == "" {
		if os.Getenv("STREAMGATE_REQUIRE_ALL") == "1" {
			tb.Fatalf("%s is unset and STREAMGATE_REQUIRE_ALL=1", env)
		}
		tb.Skipf("%s is unset: no Redis to test against", env)
	}
	client := ratelimit.NewRedisClient(ratelimit.RedisClientOptions{Addr: addr, Cluster: cluster, Timeout: time.Second})
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "sgbudget:" + hex.EncodeToString(b[:])
	tb.Cleanup(func() { cleanKeys(client, prefix) })
	return NewRedisStore(ratelimit.NewRedisStore(client, ratelimit.RedisOptions{KeyPrefix: prefix, Timeout: time.Second}))
}

func cleanKeys(client redis.UniversalClient, prefix string) {
	ctx := context.Background()
	del := func(c redis.Cmdable) {
		keys, _ := c.Keys(ctx, prefix+":*").Result()
		for _, k := range keys {
			c.Del(ctx, k)
		}
	}
	if cc, ok := client.(*redis.ClusterClient); ok {
		_ = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { del(c); return nil })
	} else {
		del(client)
	}
	_ = client.Close()
}

func calendar(key string, limit, warn int64) Counter {
	return Counter{Key: key, Limit: limit, Warn: warn, ExpireAt: time.Now().Add(time.Hour)}
}

func rollingAt(key string, limit int64, slice int64) Counter {
	return Counter{Key: key, Limit: limit, TTL: time.Hour, Slice: slice}
}

func TestStoreReservesAllOrNothing(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		cs := []Counter{calendar("{t}:b:t:day:1", 100, 0), calendar("{t}:b:k:ci:day:1", 50, 0)}
		d, err := s.Reserve(ctx, cs, 40)
		require.NoError(t, err)
		require.True(t, d.Allowed)
		assert.Equal(t, []int64{40, 40}, []int64{d.States[0].Spent, d.States[1].Spent})
		d, err = s.Reserve(ctx, cs, 20)
		require.NoError(t, err)
		require.False(t, d.Allowed, "the key's 50 has no room for 20 more")
		assert.Equal(t, []int64{40, 40}, []int64{d.States[0].Spent, d.States[1].Spent}, "nothing charged")
		d, err = s.Reserve(ctx, cs, 10)
		require.NoError(t, err)
		require.True(t, d.Allowed, "exactly the limit fits")
		assert.Equal(t, int64(50), d.States[1].Spent)
	})
}

func TestStoreSettleCorrectsAndRecordsUsage(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		cs := []Counter{calendar("{t}:b:t:day:1", 1000, 0)}
		_, err := s.Reserve(ctx, cs, 400)
		require.NoError(t, err)
		series := []SeriesBucket{{Key: "{t}:bs:h:2026120214", ExpireAt: time.Now().Add(time.Hour)}}
		_, err = s.Settle(ctx, Settlement{Counters: cs, Delta: 150 - 400, Spend: Spend{Key: "ci", Model: "m", Cost: 150, Input: 10, Output: 20}, Series: series})
		require.NoError(t, err)
		_, err = s.Reserve(ctx, cs, 100)
		require.NoError(t, err)
		_, err = s.Settle(ctx, Settlement{Counters: cs, Delta: 300 - 100, Spend: Spend{Model: "m2", Cost: 300, Input: 1, Output: 2}, Series: series})
		require.NoError(t, err, "a settlement above the reservation charges the difference")
		us, err := s.Read(ctx, cs)
		require.NoError(t, err)
		assert.Equal(t, int64(450), us[0].Spent)
		assert.Equal(t, []Usage{{Model: "m", Cost: 150, Input: 10, Output: 20, Requests: 1}, {Model: "m2", Cost: 300, Input: 1, Output: 2, Requests: 1}}, us[0].Models)
		ser, err := s.Series(ctx, []string{series[0].Key, "{t}:bs:h:2026120215"})
		require.NoError(t, err)
		assert.Equal(t, []Usage{{Model: "m2", Cost: 300, Input: 1, Output: 2, Requests: 1}, {Key: "ci", Model: "m", Cost: 150, Input: 10, Output: 20, Requests: 1}}, ser[0])
		assert.Empty(t, ser[1])
	})
}

func TestStoreNeverGoesBelowZeroOrRefundsAGoneWindow(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		cs := []Counter{calendar("{t}:b:t:day:1", 1000, 0)}
		_, err := s.Reserve(ctx, cs, 10)
		require.NoError(t, err)
		_, err = s.Settle(ctx, Settlement{Counters: cs, Delta: -50, Spend: Spend{Model: "m"}})
		require.NoError(t, err)
		us, err := s.Read(ctx, cs)
		require.NoError(t, err)
		assert.Equal(t, int64(0), us[0].Spent)
		gone := []Counter{calendar("{t}:b:t:day:0", 1000, 0)}
		_, err = s.Settle(ctx, Settlement{Counters: gone, Delta: -50, Spend: Spend{Model: "m", Cost: 5}})
		require.NoError(t, err)
		us, err = s.Read(ctx, gone)
		require.NoError(t, err)
		assert.Equal(t, CounterUsage{Oldest: -1, Models: us[0].Models}, us[0])
		assert.Empty(t, us[0].Models, "a refund does not create a window that is gone")
		// A charge without a reservation (admitted while the store was
		// down) creates its window; one already over expires at once.
		_, err = s.Settle(ctx, Settlement{Counters: gone, Delta: 7, Spend: Spend{Model: "m", Cost: 7}})
		require.NoError(t, err)
		us, err = s.Read(ctx, gone)
		require.NoError(t, err)
		assert.Equal(t, int64(7), us[0].Spent)
		over := []Counter{{Key: "{t}:b:t:day:-1", Limit: 1000, ExpireAt: time.Now().Add(-time.Hour)}}
		_, err = s.Settle(ctx, Settlement{Counters: over, Delta: 7, Spend: Spend{Model: "m", Cost: 7}})
		require.NoError(t, err)
		us, err = s.Read(ctx, over)
		require.NoError(t, err)
		assert.Zero(t, us[0].Spent)
	})
}

func TestStoreRollingWindowForgetsOldSlices(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		d, err := s.Reserve(ctx, []Counter{rollingAt("{t}:b:t:1h0m0s", 100, 1000)}, 60)
		require.NoError(t, err)
		require.True(t, d.Allowed)
		d, err = s.Reserve(ctx, []Counter{rollingAt("{t}:b:t:1h0m0s", 100, 1030)}, 30)
		require.NoError(t, err)
		require.True(t, d.Allowed)
		d, err = s.Reserve(ctx, []Counter{rollingAt("{t}:b:t:1h0m0s", 100, 1059)}, 20)
		require.NoError(t, err)
		require.False(t, d.Allowed, "60 + 30 spent in the last 60 slices")
		assert.Equal(t, int64(90), d.States[0].Spent)
		assert.Equal(t, int64(1000), d.States[0].Oldest)
		d, err = s.Reserve(ctx, []Counter{rollingAt("{t}:b:t:1h0m0s", 100, 1060)}, 20)
		require.NoError(t, err)
		require.True(t, d.Allowed, "slice 1000 left the window")
		assert.Equal(t, int64(50), d.States[0].Spent)
		// A settlement goes to the slice the reservation was made in.
		_, err = s.Settle(ctx, Settlement{Counters: []Counter{rollingAt("{t}:b:t:1h0m0s", 100, 1030)}, Delta: -30})
		require.NoError(t, err)
		us, err := s.Read(ctx, []Counter{rollingAt("{t}:b:t:1h0m0s", 100, 1060)})
		require.NoError(t, err)
		assert.Equal(t, int64(20), us[0].Spent)
		assert.Equal(t, int64(1060), us[0].Oldest)
	})
}

func TestStoreWarnsOncePerWindow(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		cs := []Counter{calendar("{t}:b:t:day:1", 100, 50)}
		var warned []bool
		for _, cost := range []int64{40, 20, 10} {
			d, err := s.Reserve(ctx, cs, cost)
			require.NoError(t, err)
			warned = append(warned, d.States[0].Warned)
		}
		assert.Equal(t, []bool{false, true, false}, warned)
		other := []Counter{calendar("{t}:b:t:day:2", 100, 50)}
		_, err := s.Reserve(ctx, other, 40)
		require.NoError(t, err)
		w, err := s.Settle(ctx, Settlement{Counters: other, Delta: 30, Spend: Spend{Model: "m", Cost: 70}})
		require.NoError(t, err)
		assert.Equal(t, []bool{true}, w, "a settlement above the reservation may cross the warning")
		roll := func(slice int64) bool {
			d, err := s.Reserve(ctx, []Counter{{Key: "{t}:b:t:1h0m0s", Limit: 1000, Warn: 10, TTL: time.Hour, Slice: slice}}, 10)
			require.NoError(t, err)
			return d.States[0].Warned
		}
		assert.Equal(t, []bool{true, false, true}, []bool{roll(100), roll(159), roll(160)}, "a rolling window warns at most once per window length")
	})
}

func TestStoreNoOvershootUnderConcurrency(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		cs := []Counter{calendar("{t}:b:t:month:1", 50, 0)}
		var ok atomic.Int64
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				d, err := s.Reserve(ctx, cs, 1)
				if err == nil && d.Allowed {
					ok.Add(1)
				}
			})
		}
		wg.Wait()
		assert.Equal(t, int64(50), ok.Load())
	})
}

func TestStoreListsSeenTenants(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		now := time.Now()
		require.NoError(t, s.Seen(ctx, "b", now))
		require.NoError(t, s.Seen(ctx, "a", now.Add(-time.Hour)))
		require.NoError(t, s.Seen(ctx, "old", now.Add(-48*time.Hour)))
		got, err := s.Tenants(ctx, now.Add(-24*time.Hour))
		require.NoError(t, err)
		assert.ElementsMatch(t, []string{"a", "b"}, got)
	})
}

func TestStoreRefundRecordsNoUsage(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		cs := []Counter{calendar("{t}:b:t:day:1", 100, 0)}
		_, err := s.Reserve(ctx, cs, 40)
		require.NoError(t, err)
		_, err = s.Settle(ctx, Settlement{Counters: cs, Delta: -40, Refund: true, Spend: Spend{Model: "m"}})
		require.NoError(t, err)
		us, err := s.Read(ctx, cs)
		require.NoError(t, err)
		assert.Equal(t, int64(0), us[0].Spent)
		assert.Empty(t, us[0].Models, "a refused request is no request of the model")
	})
}

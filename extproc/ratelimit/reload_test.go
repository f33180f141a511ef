package ratelimit

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

// reloadCfg returns limits with a queue that refuses at once when full
// (size 0), so a test sees a concurrency refusal without waiting.
func reloadCfg(tenants ...config.TenantLimits) *config.Limits {
	return &config.Limits{Queue: config.Queue{Size: 0, MaxWait: time.Second}, Tenants: tenants}
}

func rpm(name string, n int64) config.TenantLimits {
	return config.TenantLimits{Name: name, Rates: config.Rates{RequestsPerMinute: n}}
}

func streams(name string, n int) config.TenantLimits {
	return config.TenantLimits{Name: name, Rates: config.Rates{ConcurrentStreams: n}}
}

// reload makes and activates the Limiter of cfg on l's state, as a config
// reload does.
func reload(l *Limiter, cfg *config.Limits) *Limiter {
	n := l.Reconfigured(cfg)
	n.Activate()
	return n
}

func admit(t *testing.T, l *Limiter, tenant string) (*Reservation, error) {
	t.Helper()
	res, _, err := l.Admit(context.Background(), Request{Tenant: tenant, Model: "m", Backend: "b"})
	return res, err
}

func TestReloadedRateAppliesFromTheNextRequest(t *testing.T) {
	clk := newFakeClock()
	old := New(reloadCfg(rpm("a", 1)), NewMemoryStore(clk), clk, nil)
	_, err := admit(t, old, "a")
	require.NoError(t, err)
	_, err = admit(t, old, "a")
	require.ErrorIs(t, err, ErrRateLimited)

	next := reload(old, reloadCfg(rpm("a", 600)))
	clk.Advance(100 * time.Millisecond) // one request's worth at 600 per minute
	_, err = admit(t, old, "a")
	require.ErrorIs(t, err, ErrRateLimited, "under the old rate the tenant is still limited")
	_, err = admit(t, next, "a")
	require.NoError(t, err, "the raised rate applies to the next request")

	// Lowered again: the bucket is now measured at 1 per minute.
	low := reload(next, reloadCfg(rpm("a", 1)))
	clk.Advance(time.Second)
	_, err = admit(t, low, "a")
	require.ErrorIs(t, err, ErrRateLimited, "the lowered rate applies to the next request")
}

func TestReloadKeepsUnchangedTenantsBuckets(t *testing.T) {
	clk := newFakeClock()
	old := New(reloadCfg(rpm("a", 2), rpm("b", 2)), NewMemoryStore(clk), clk, nil)
	for range 2 {
		_, err := admit(t, old, "a")
		require.NoError(t, err)
	}
	_, err := admit(t, old, "a")
	require.ErrorIs(t, err, ErrRateLimited, "a used its burst")

	next := reload(old, reloadCfg(rpm("a", 2), rpm("b", 100)))
	_, err = admit(t, next, "a")
	require.ErrorIs(t, err, ErrRateLimited, "a reload that changes only b leaves a's bucket as it was")
	_, err = admit(t, next, "b")
	require.NoError(t, err)
}

func TestReloadShrinkingConcurrencyCapReleasesHeldSlots(t *testing.T) {
	clk := newFakeClock()
	m := NewMetrics(prometheus.NewRegistry())
	old := New(reloadCfg(streams("a", 3)), NewMemoryStore(clk), clk, m)
	var held []*Reservation
	for range 3 {
		res, err := admit(t, old, "a")
		require.NoError(t, err)
		held = append(held, res)
	}
	next := reload(old, reloadCfg(streams("a", 1)))
	for i, res := range held[:2] {
		res.Finish(Usage{})
		_, err := admit(t, next, "a")
		require.ErrorIs(t, err, ErrTenantBusy, "after %d of 3 old slots freed the new cap of 1 is still full", i+1)
	}
	held[2].Finish(Usage{})
	res, err := admit(t, next, "a")
	require.NoError(t, err, "the last old slot freed: one fits under the new cap")
	_, err = admit(t, next, "a")
	require.ErrorIs(t, err, ErrTenantBusy)
	res.Finish(Usage{})
	for _, r := range held {
		r.Finish(Usage{}) // extra calls do nothing
	}
	assert.Empty(t, next.gate.inUse, "every slot freed once: none leaked, none negative")
	assert.InDelta(t, 0, testutil.ToFloat64(m.reservations), 0)
}

func TestReloadAppliesNewCapsToWaitingRequests(t *testing.T) {
	clk := newFakeClock()
	cfg := reloadCfg(streams("a", 1))
	cfg.Queue.Size = 4
	old := New(cfg, NewMemoryStore(clk), clk, nil)
	first, err := admit(t, old, "a")
	require.NoError(t, err)
	got := make(chan error, 1)
	go func() {
		res, err := admit(t, old, "a")
		if err == nil {
			defer res.Finish(Usage{})
		}
		got <- err
	}()
	require.Eventually(t, func() bool { return old.Waiting() == 1 }, 5*time.Second, time.Millisecond)

	raised := reloadCfg(streams("a", 2))
	raised.Queue.Size = 4
	reload(old, raised)
	select {
	case err := <-got:
		require.NoError(t, err, "a raised cap admits the waiting request at once")
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting request was not admitted under the raised cap")
	}
	first.Finish(Usage{})
}

func TestReloadDropsRemovedTenantWithoutBreakingItsRequests(t *testing.T) {
	clk := newFakeClock()
	store := NewMemoryStore(clk)
	m := NewMetrics(prometheus.NewRegistry())
	gone := config.TenantLimits{Name: "gone", Rates: config.Rates{OutputTokensPerMinute: 100, ConcurrentStreams: 1}}
	old := New(reloadCfg(gone, rpm("kept", 5)), store, clk, m)
	res, _, err := old.Admit(context.Background(), Request{Tenant: "gone", Input: 1, Output: 80})
	require.NoError(t, err)
	kept, err := admit(t, old, "kept")
	require.NoError(t, err)
	kept.Finish(Usage{})

	next := reload(old, reloadCfg(rpm("kept", 5)))
	assert.NotContains(t, store.tats, "{gone}:otpm", "the removed tenant's bucket is dropped")
	assert.Contains(t, store.tats, "{kept}:rpm", "a kept tenant's bucket stays")
	free, err := admit(t, next, "gone")
	require.NoError(t, err, "a tenant no longer listed is not limited")
	assert.False(t, free.Holds())
	free.Finish(Usage{})

	res.Finish(Usage{Input: 1, Output: 20}) // settles and frees its slot as usual
	assert.Empty(t, next.gate.inUse)
	assert.InDelta(t, 0, testutil.ToFloat64(m.reservations), 0)
	assert.InDelta(t, 20, testutil.ToFloat64(m.reconciled.WithLabelValues("output")), 0)

	// Listed again, the tenant starts from a full bucket.
	back := reload(next, reloadCfg(gone, rpm("kept", 5)))
	res, h, err := back.Admit(context.Background(), Request{Tenant: "gone", Output: 100})
	require.NoError(t, err, "the settlement after removal charged nothing that lingers")
	assert.Equal(t, int64(0), h.Tokens.Remaining)
	res.Finish(Usage{Output: 100})
}

func TestReloadKeepsWildcardTenantsBuckets(t *testing.T) {
	clk := newFakeClock()
	store := NewMemoryStore(clk)
	old := New(reloadCfg(rpm("x", 1), rpm(config.AnyTenant, 1)), store, clk, nil)
	_, err := admit(t, old, "x")
	require.NoError(t, err)
	next := reload(old, reloadCfg(rpm(config.AnyTenant, 1)))
	_, err = admit(t, next, "x")
	require.ErrorIs(t, err, ErrRateLimited, "a tenant still limited (by \"*\") keeps its bucket")
}

func TestReloadOnRedisKeepsAndChangesBuckets(t *testing.T) {
	store := newTestRedisStore(t, RedisOptions{})
	clk := SystemClock{}
	old := New(reloadCfg(rpm("a", 2), rpm("b", 2)), store, clk, nil)
	for range 2 {
		_, err := admit(t, old, "a")
		require.NoError(t, err)
	}
	_, err := admit(t, old, "a")
	require.ErrorIs(t, err, ErrRateLimited)

	other := reload(old, reloadCfg(rpm("a", 2), rpm("b", 100)))
	_, err = admit(t, other, "a")
	require.ErrorIs(t, err, ErrRateLimited, "a reload that changes only b leaves a's Redis bucket as it was")

	raised := reload(other, reloadCfg(rpm("a", 6000), rpm("b", 100)))
	time.Sleep(20 * time.Millisecond) // two requests' worth at 6000 per minute
	_, err = admit(t, raised, "a")
	require.NoError(t, err, "a's raised rate applies to its next request")
}

func TestReloadedFailOpenWordsTheOutageLog(t *testing.T) {
	logs := &logLines{}
	s := NewRedisStore(NewRedisClient(RedisClientOptions{Addr: closedAddr(t), Timeout: 100 * time.Millisecond}),
		RedisOptions{FailOpen: false, Log: slog.New(slog.NewTextHandler(logs, nil))})
	cfg := reloadCfg(rpm("a", 1))
	cfg.Redis = &config.Redis{FailOpen: false}
	old := New(cfg, s, newFakeClock(), nil)
	open := reloadCfg(rpm("a", 1))
	open.Redis = &config.Redis{FailOpen: true}
	next := reload(old, open)
	res, err := admit(t, next, "a")
	require.NoError(t, err, "fail_open turned on by a reload admits while Redis is down")
	res.Finish(Usage{})
	assert.Equal(t, 1, logs.count("fail_open"))
	assert.Equal(t, 0, logs.count("fail_closed"))
}

func TestReloadShrinkingCapReleasesHeldTenantSlots(t *testing.T) {
	clk := newFakeClock()
	m := NewMetrics(prometheus.NewRegistry())
	old := New(reloadCfg(streams("a", 2)), NewMemoryStore(clk), clk, m)
	ctx := context.Background()
	h1, err := old.HoldTenant(ctx, "a")
	require.NoError(t, err)
	h2, err := old.HoldTenant(ctx, "a")
	require.NoError(t, err)

	next := reload(old, reloadCfg(streams("a", 1)))
	h1.Release()
	_, err = next.HoldTenant(ctx, "a")
	require.ErrorIs(t, err, ErrTenantBusy, "one old hold left fills the new cap of 1")
	// The other old hold goes on to admission under its own (old) limiter,
	// as its request does, and ends there.
	res, _, err := old.Admit(ctx, Request{Tenant: "a", Hold: h2})
	require.NoError(t, err)
	res.Finish(Usage{})
	h3, err := next.HoldTenant(ctx, "a")
	require.NoError(t, err, "both old slots freed: the new cap admits one")
	h3.Release()
	assert.Empty(t, next.gate.inUse)
	assert.InDelta(t, 0, testutil.ToFloat64(m.holds), 0)
	assert.InDelta(t, 0, testutil.ToFloat64(m.reservations), 0)
}

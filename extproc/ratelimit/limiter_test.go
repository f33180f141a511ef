package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

func newTestLimiter(t *testing.T, cfg *config.Limits) (*Limiter, *fakeClock, *Metrics) {
	t.Helper()
	if cfg.Queue.Size == 0 {
		cfg.Queue = config.Queue{Size: 10, MaxWait: time.Second}
	}
	clk := newFakeClock()
	m := NewMetrics(prometheus.NewRegistry())
	return New(cfg, NewMemoryStore(clk), clk, m), clk, m
}

func TestAdmitReconcilesToRealUsage(t *testing.T) {
	l, _, m := newTestLimiter(t, &config.Limits{Tenants: []config.TenantLimits{{
		Name:  "acme",
		Rates: config.Rates{RequestsPerMinute: 10, TotalTokensPerMinute: 1000, OutputTokensPerMinute: 600},
	}}})
	ctx := context.Background()
	res, h, err := l.Admit(ctx, Request{Tenant: "acme", Model: "m", Input: 100, Output: 500})
	require.NoError(t, err)
	require.NotNil(t, h.Requests)
	assert.Equal(t, int64(9), h.Requests.Remaining)
	assert.Equal(t, int64(100), h.Tokens.Remaining, "the tightest token bucket: output 600-500")
	assert.InDelta(t, 1, testutil.ToFloat64(m.reservations), 0)
	res.Finish(Usage{Input: 120, Output: 30})
	res.Finish(Usage{Input: 1, Output: 1}) // only the first call counts
	assert.InDelta(t, 0, testutil.ToFloat64(m.reservations), 0)
	_, h, err = l.Admit(ctx, Request{Tenant: "acme", Model: "m", Input: 0, Output: 0})
	require.NoError(t, err)
	assert.Equal(t, int64(570), h.Tokens.Remaining, "output bucket holds the 30 really used")
	// The total bucket was charged 150 exactly: 850 left.
	d, _ := l.store.Reserve(ctx, []Charge{{Key: "{acme}:tpm", Rule: Rule{Limit: 1000, Period: time.Minute}}})
	assert.Equal(t, int64(850), d.States[0].Remaining)
}

func TestAdmitDeniesOverRateWithRetryAfter(t *testing.T) {
	l, clk, m := newTestLimiter(t, &config.Limits{Tenants: []config.TenantLimits{{
		Name: config.AnyTenant, Rates: config.Rates{InputTokensPerMinute: 600},
	}}})
	ctx := context.Background()
	r, _, err := l.Admit(ctx, Request{Tenant: "a", Input: 600})
	require.NoError(t, err)
	r.Finish(Usage{Input: 600})
	_, h, err := l.Admit(ctx, Request{Tenant: "a", Input: 10})
	require.ErrorIs(t, err, ErrRateLimited)
	var de *DeniedError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, time.Second, de.RetryAfter)
	assert.Contains(t, de.Error(), "input tokens per minute")
	assert.Equal(t, int64(0), h.Tokens.Remaining)
	assert.Nil(t, h.Requests)
	_, _, err = l.Admit(ctx, Request{Tenant: "b", Input: 10})
	require.NoError(t, err, `"*" gives every tenant its own buckets`)
	clk.Advance(time.Second)
	_, _, err = l.Admit(ctx, Request{Tenant: "a", Input: 10})
	require.NoError(t, err)
	assert.InDelta(t, 1, testutil.ToFloat64(m.deniedTotal.WithLabelValues("rate_limited")), 0)
}

func TestConcurrencyDenialRefundsRates(t *testing.T) {
	l, clk, _ := newTestLimiter(t, &config.Limits{
		Tenants:  []config.TenantLimits{{Name: "a", Rates: config.Rates{RequestsPerMinute: 5}}},
		Backends: []config.BackendLimits{{Name: "b", MaxInFlight: 1}},
	})
	ctx := context.Background()
	held, _, err := l.Admit(ctx, Request{Tenant: "a", Backend: "b"})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, _, err := l.Admit(ctx, Request{Tenant: "a", Backend: "b"})
		done <- err
	}()
	waitFor(t, "the queued request starts its max-wait timer", func() bool { return clk.Timers() > 0 })
	clk.Advance(time.Second)
	select {
	case err := <-done:
		require.ErrorIs(t, err, ErrBackendBusy)
	case <-time.After(waitLimit):
		t.Fatal("the queued request was not refused at its max wait")
	}
	held.Finish(Usage{})
	_, h, err := l.Admit(ctx, Request{Tenant: "a", Backend: "b"})
	require.NoError(t, err)
	assert.Equal(t, int64(3), h.Requests.Remaining, "two admitted, the refused one refunded")
}

func TestValidTenant(t *testing.T) {
	assert.True(t, ValidTenant("team-a.prod:x@y_1"))
	assert.False(t, ValidTenant(""))
	assert.False(t, ValidTenant("a}b"))
	assert.False(t, ValidTenant(string(make([]byte, 129))))
}

// deadlineStore is a MemoryStore behind another type (as a remote store
// is) that records whether Adjust got a deadline.
type deadlineStore struct {
	*MemoryStore
	deadlines chan bool
}

func (s deadlineStore) Adjust(ctx context.Context, charges []Charge) error {
	_, ok := ctx.Deadline()
	s.deadlines <- ok
	return s.MemoryStore.Adjust(ctx, charges)
}

// TestFinishBoundsRemoteAdjust: reconciling with a store other than the
// in-memory one still runs under adjustTimeout, so a hung store cannot
// hold a finishing request.
func TestFinishBoundsRemoteAdjust(t *testing.T) {
	clk := newFakeClock()
	store := deadlineStore{MemoryStore: NewMemoryStore(clk), deadlines: make(chan bool, 1)}
	l := New(&config.Limits{Queue: config.Queue{Size: 10, MaxWait: time.Second}, Tenants: []config.TenantLimits{{
		Name: "acme", Rates: config.Rates{TotalTokensPerMinute: 1000},
	}}}, store, clk, NewMetrics(nil))
	res, _, err := l.Admit(context.Background(), Request{Tenant: "acme", Input: 10, Output: 100})
	require.NoError(t, err)
	res.Finish(Usage{Input: 10, Output: 5})
	assert.True(t, <-store.deadlines, "Adjust ran with a deadline")
}

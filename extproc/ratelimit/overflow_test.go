package ratelimit

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

// TestNegativeCostNeverRefills (issue 23 finding 3): a reservation whose
// estimate wrapped negative (max_tokens × n overflowing) is not free, and
// reconciling it neither refunds the tenant's spent budget nor locks the
// tenant out for a century. Unpatched, the wrapped reservation was free
// and its reconciliation refunded the spent budget ("refill") or charged
// a century of debt ("lockout", so even the 92 that fit was refused).
func TestNegativeCostNeverRefills(t *testing.T) {
	for name, reserved := range map[string]int64{
		"refill":  math.MinInt64, // 8 × 2^60 wrapped: the difference overflows into a refund
		"lockout": -(1 << 62),    // the difference is a huge debt
	} {
		t.Run(name, func(t *testing.T) {
			l, _, _ := newTestLimiter(t, &config.Limits{Tenants: []config.TenantLimits{{
				Name: "victim", Rates: config.Rates{TotalTokensPerMinute: 1000, OutputTokensPerMinute: 1000},
			}}})
			ctx := context.Background()
			res, _, err := l.Admit(ctx, Request{Tenant: "victim", Output: 900})
			require.NoError(t, err)
			res.Finish(Usage{Output: 900})
			res, _, err = l.Admit(ctx, Request{Tenant: "victim", Output: reserved})
			require.NoError(t, err)
			assert.Equal(t, int64(0), res.Reserved().Output, "a negative estimate reserves nothing")
			res.Finish(Usage{Output: 8})
			_, h, err := l.Admit(ctx, Request{Tenant: "victim", Output: 92})
			require.NoError(t, err, "900+8 were spent: 92 still fit")
			assert.Equal(t, int64(0), h.Tokens.Remaining)
			_, _, err = l.Admit(ctx, Request{Tenant: "victim", Output: 100})
			var de *DeniedError
			require.ErrorAs(t, err, &de, "the budget is spent, not refilled")
			assert.LessOrEqual(t, de.RetryAfter, 6*time.Second)
		})
	}
}

// TestHugeUsageSaturates: reconciling absurd usage (a backend reporting
// MaxInt64 tokens) keeps every sum finite: the debt is capped, never
// wrapped into a refund.
func TestHugeUsageSaturates(t *testing.T) {
	l, _, _ := newTestLimiter(t, &config.Limits{Tenants: []config.TenantLimits{{
		Name: "t", Rates: config.Rates{TotalTokensPerMinute: 1000},
	}}})
	ctx := context.Background()
	for range 3 {
		res, _, err := l.Admit(ctx, Request{Tenant: "t", Input: 1})
		if err != nil {
			break
		}
		res.Finish(Usage{Input: math.MaxInt64, Output: math.MaxInt64})
	}
	_, _, err := l.Admit(ctx, Request{Tenant: "t", Input: 1})
	require.ErrorIs(t, err, ErrRateLimited)
}

// TestStoreAdjustNeverWraps: repeated maximal debts keep a bucket empty;
// unpatched, the third century pushed the memory store's tat past
// MaxInt64 and the bucket read as full.
func TestStoreAdjustNeverWraps(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, _ *fakeClock) {
		ctx := context.Background()
		rule := Rule{Limit: 1000, Period: time.Minute}
		for range 3 {
			require.NoError(t, s.Adjust(ctx, []Charge{{Key: "k", Rule: rule, Cost: math.MaxInt64}}))
		}
		d, err := s.Reserve(ctx, []Charge{{Key: "k", Rule: rule, Cost: 1}})
		require.NoError(t, err)
		assert.False(t, d.Allowed)
		assert.Positive(t, d.RetryAfter)
		assert.LessOrEqual(t, d.RetryAfter, maxIncrement)
	})
}

// TestNegativeUsageIsZero: usage a backend reports below zero counts as
// zero. Found by FuzzRequestPath: unpatched, Finish panicked ("counter
// cannot decrease in value"), killing the gateway, and would have
// refunded what was never reserved.
func TestNegativeUsageIsZero(t *testing.T) {
	l, _, _ := newTestLimiter(t, &config.Limits{Tenants: []config.TenantLimits{{
		Name: "t", Rates: config.Rates{TotalTokensPerMinute: 1000},
	}}})
	ctx := context.Background()
	res, _, err := l.Admit(ctx, Request{Tenant: "t", Input: 500, Output: 500})
	require.NoError(t, err)
	require.NotPanics(t, func() { res.Finish(Usage{Input: -43, Output: math.MinInt64}) })
	_, h, err := l.Admit(ctx, Request{Tenant: "t"})
	require.NoError(t, err)
	assert.Equal(t, int64(1000), h.Tokens.Remaining, "the reservation is refunded, no more")
}

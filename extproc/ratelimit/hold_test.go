package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

// TestHoldTenantTakesTheSlotAtHeaders: the tenant's concurrent-streams slot
// is taken by HoldTenant; Admit takes the hold over without taking a second
// place; every path gives it back exactly once.
func TestHoldTenantTakesTheSlotAtHeaders(t *testing.T) {
	for name, run := range map[string]func(t *testing.T, l *Limiter, h *Hold){
		"released before admission": func(t *testing.T, _ *Limiter, h *Hold) {
			h.Release()
			h.Release()
		},
		"taken over by admission": func(t *testing.T, l *Limiter, h *Hold) {
			res, _, err := l.Admit(context.Background(), Request{Tenant: "acme", Model: "m", Hold: h})
			require.NoError(t, err)
			assert.True(t, res.Holds(), "the reservation holds the tenant's slot")
			h.Release() // taken over: does nothing
			assert.Equal(t, 1, l.gate.inUse[tenantSlotKey("acme")], "the slot stays with the reservation")
			res.Finish(Usage{})
		},
		"refused admission leaves it to the caller": func(t *testing.T, l *Limiter, h *Hold) {
			_, _, err := l.Admit(context.Background(), Request{Tenant: "acme", Model: "m", Input: 1000, Hold: h})
			require.ErrorIs(t, err, ErrRateLimited)
			assert.Equal(t, 1, l.gate.inUse[tenantSlotKey("acme")])
			h.Release()
		},
	} {
		t.Run(name, func(t *testing.T) {
			l, _, m := newTestLimiter(t, &config.Limits{
				Queue:   config.Queue{Size: 0},
				Tenants: []config.TenantLimits{{Name: "acme", Rates: config.Rates{ConcurrentStreams: 1, InputTokensPerMinute: 100}}},
			})
			l.gate.size = 0 // refuse at once instead of queueing
			h, err := l.HoldTenant(context.Background(), "acme")
			require.NoError(t, err)
			require.NotNil(t, h)
			assert.InDelta(t, 1, testutil.ToFloat64(m.holds), 0)
			_, err = l.HoldTenant(context.Background(), "acme")
			require.ErrorIs(t, err, ErrTenantBusy, "the second stream is refused at its headers")

			run(t, l, h)

			assert.Empty(t, l.gate.inUse, "no slot leaks")
			assert.InDelta(t, 0, testutil.ToFloat64(m.holds), 0)
			assert.InDelta(t, 0, testutil.ToFloat64(m.reservations), 0)
		})
	}
}

func TestHoldTenantWithoutConcurrencyLimit(t *testing.T) {
	l, _, _ := newTestLimiter(t, &config.Limits{Tenants: []config.TenantLimits{{Name: "acme", Rates: config.Rates{RequestsPerMinute: 1}}}})
	h, err := l.HoldTenant(context.Background(), "acme")
	require.NoError(t, err)
	assert.Nil(t, h)
	h.Release() // nil-safe
	res, _, err := l.Admit(context.Background(), Request{Tenant: "acme", Hold: h})
	require.NoError(t, err)
	res.Finish(Usage{})
}

// BenchmarkAdmitConcurrent is one request's admission for a tenant with a
// concurrent_streams limit: the slot taken with the rest after the body
// (admit), or at the headers and taken over after the body (hold+admit).
func BenchmarkAdmitConcurrent(b *testing.B) {
	cfg := &config.Limits{
		Queue: config.Queue{Size: 1, MaxWait: time.Second},
		Tenants: []config.TenantLimits{{
			Name:  "acme",
			Rates: config.Rates{RequestsPerMinute: 1 << 40, TotalTokensPerMinute: 1 << 40, ConcurrentStreams: 100},
		}},
	}
	req := Request{Tenant: "acme", Model: "gpt", Input: 300, Output: 256}
	for _, hold := range []bool{false, true} {
		name := "admit"
		if hold {
			name = "hold+admit"
		}
		b.Run(name, func(b *testing.B) {
			l := New(cfg, NewMemoryStore(SystemClock{}), SystemClock{}, nil)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				r := req
				if hold {
					h, err := l.HoldTenant(ctx, "acme")
					if err != nil {
						b.Fatal(err)
					}
					r.Hold = h
				}
				res, _, err := l.Admit(ctx, r)
				if err != nil {
					b.Fatal(err)
				}
				res.Finish(Usage{Input: 300, Output: 100})
			}
		})
	}
}

package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

// waitLimit bounds every wait for a condition in this package's tests: far
// above what a loaded 2-core machine needs for a goroutine to reach a
// channel (microseconds to milliseconds), short enough that a bug fails
// the test in seconds instead of hanging it.
const waitLimit = 5 * time.Second

// waitFor polls cond every millisecond until it holds, failing the test
// with what when waitLimit passes first.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting until %s", waitLimit, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGateNeverAdmitsOverLimit: with no queue, the request one past a
// slot's limit is refused at once, whatever the limit; a place freed is
// a place taken again, no more.
func TestGateNeverAdmitsOverLimit(t *testing.T) {
	for name, slot := range map[string]Slot{
		"tenant limit 1":  {Key: "t", Limit: 1},
		"tenant limit 3":  {Key: "t", Limit: 3},
		"backend limit 2": {Key: "b", Limit: 2, Backend: true},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewGate(newFakeClock(), 0, time.Second)
			ctx := context.Background()
			var held []func()
			for range slot.Limit {
				rel, err := g.Acquire(ctx, "a", []Slot{slot})
				require.NoError(t, err)
				held = append(held, rel)
			}
			_, err := g.Acquire(ctx, "a", []Slot{slot})
			require.Error(t, err, "admitted %d streams with a limit of %d", slot.Limit+1, slot.Limit)
			held[0]()
			_, err = g.Acquire(ctx, "a", []Slot{slot})
			require.NoError(t, err, "the freed place is taken again")
			_, err = g.Acquire(ctx, "a", []Slot{slot})
			require.Error(t, err, "one freed place admits one stream")
		})
	}
}

// TestFinishFreesConcurrencySlot: Finish gives the reservation's slots
// back, so the next request of a tenant at its concurrency limit is
// admitted at once (the bounded context turns a slot never freed into a
// failure instead of a wait on the fake clock that never ends).
func TestFinishFreesConcurrencySlot(t *testing.T) {
	l, _, _ := newTestLimiter(t, &config.Limits{
		Tenants:  []config.TenantLimits{{Name: "a", Rates: config.Rates{ConcurrentStreams: 1}}},
		Backends: []config.BackendLimits{{Name: "b", MaxInFlight: 1}},
	})
	req := Request{Tenant: "a", Backend: "b"}
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		res, _, err := l.Admit(ctx, req)
		cancel()
		require.NoError(t, err, "request %d: the previous one's Finish must free its slots", i)
		assert.True(t, res.Holds())
		res.Finish(Usage{})
	}
	assert.Equal(t, 0, l.Waiting())
}

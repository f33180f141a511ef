package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type acquired struct {
	id      string
	release func()
	err     error
}

// acquireAsync queues a request and waits until the gate has it queued.
// A request that is answered at once (admitted over a full slot, or
// refused) or not queued within waitLimit fails the test.
func acquireAsync(t *testing.T, ctx context.Context, g *Gate, id, tenant string, slots []Slot, out chan<- acquired) {
	t.Helper()
	before := g.Waiting()
	answered := make(chan error, 1)
	go func() {
		rel, err := g.Acquire(ctx, tenant, slots)
		answered <- err
		out <- acquired{id, rel, err}
	}()
	deadline := time.Now().Add(waitLimit)
	for g.Waiting() == before {
		select {
		case err := <-answered:
			t.Fatalf("%s was answered at once (error %v) instead of queued", id, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not queued within %v", id, waitLimit)
		}
		time.Sleep(time.Millisecond)
	}
}

// recv takes the next answer from out, failing the test after waitLimit.
func recv(t *testing.T, out <-chan acquired) acquired {
	t.Helper()
	select {
	case a := <-out:
		return a
	case <-time.After(waitLimit):
		t.Fatalf("no answer within %v", waitLimit)
		return acquired{}
	}
}

func tenantSlot(tenant string, n int) []Slot { return []Slot{{Key: "t:" + tenant, Limit: n}} }

func TestGateAdmitsUpToLimitThenQueues(t *testing.T) {
	g := NewGate(newFakeClock(), 10, time.Second)
	ctx := context.Background()
	slots := []Slot{{Key: "b", Limit: 2, Backend: true}}
	r1, err := g.Acquire(ctx, "a", slots)
	require.NoError(t, err)
	_, err = g.Acquire(ctx, "a", slots)
	require.NoError(t, err)
	out := make(chan acquired, 1)
	acquireAsync(t, ctx, g, "third", "a", slots, out)
	select {
	case <-out:
		t.Fatal("third request admitted over the limit")
	default:
	}
	r1()
	r1() // a second release must not free another place
	got := recv(t, out)
	require.NoError(t, got.err)
	assert.Equal(t, 0, g.Waiting())
	acquireAsync(t, ctx, g, "fourth", "a", slots, out)
	assert.Equal(t, 1, g.Waiting(), "two held: a new request must wait, not pass")
	got.release()
	require.NoError(t, recv(t, out).err)
}

func TestGateTimeoutSaysWhichLimit(t *testing.T) {
	for name, tc := range map[string]struct {
		slots []Slot
		want  error
	}{
		"tenant full":  {[]Slot{{Key: "t", Limit: 1}, {Key: "b", Limit: 5, Backend: true}}, ErrTenantBusy},
		"backend full": {[]Slot{{Key: "t", Limit: 5}, {Key: "b", Limit: 1, Backend: true}}, ErrBackendBusy},
	} {
		t.Run(name, func(t *testing.T) {
			clk := newFakeClock()
			g := NewGate(clk, 10, 2*time.Second)
			_, err := g.Acquire(context.Background(), "x", tc.slots)
			require.NoError(t, err)
			out := make(chan acquired, 1)
			acquireAsync(t, context.Background(), g, "w", "x", tc.slots, out)
			waitFor(t, "the waiter starts its max-wait timer", func() bool { return clk.Timers() > 0 })
			clk.Advance(2*time.Second - time.Nanosecond)
			select {
			case <-out:
				t.Fatal("gave up before max wait")
			default:
			}
			clk.Advance(time.Nanosecond)
			got := recv(t, out)
			require.ErrorIs(t, got.err, tc.want)
			var de *DeniedError
			require.ErrorAs(t, got.err, &de)
			assert.Equal(t, int64(2), de.RetryAfterSeconds())
			assert.Equal(t, 0, g.Waiting())
		})
	}
}

func TestGateQueueFullDeniesAtOnce(t *testing.T) {
	g := NewGate(newFakeClock(), 1, time.Second)
	ctx := context.Background()
	slots := tenantSlot("a", 1)
	_, err := g.Acquire(ctx, "a", slots)
	require.NoError(t, err)
	out := make(chan acquired, 1)
	acquireAsync(t, ctx, g, "w", "a", slots, out)
	_, err = g.Acquire(ctx, "a", slots)
	require.ErrorIs(t, err, ErrTenantBusy)
}

func TestGateCancelledWaiterLeaves(t *testing.T) {
	g := NewGate(newFakeClock(), 10, time.Second)
	slots := tenantSlot("a", 1)
	rel, err := g.Acquire(context.Background(), "a", slots)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan acquired, 1)
	acquireAsync(t, ctx, g, "w", "a", slots, out)
	cancel()
	got := recv(t, out)
	require.ErrorIs(t, got.err, context.Canceled)
	assert.Equal(t, 0, g.Waiting())
	rel()
	_, err = g.Acquire(context.Background(), "a", slots)
	require.NoError(t, err, "the cancelled waiter must not hold the slot")
}

// TestGateRoundRobinAcrossTenants floods the backend queue with one
// tenant; a second tenant arriving later is served within one slot turn.
func TestGateRoundRobinAcrossTenants(t *testing.T) {
	g := NewGate(newFakeClock(), 100, time.Minute)
	ctx := context.Background()
	backend := []Slot{{Key: "b", Limit: 1, Backend: true}}
	hold, err := g.Acquire(ctx, "heavy", backend)
	require.NoError(t, err)
	out := make(chan acquired, 20)
	for i := range 5 {
		acquireAsync(t, ctx, g, "heavy"+string(rune('0'+i)), "heavy", backend, out)
	}
	acquireAsync(t, ctx, g, "light0", "light", backend, out)
	acquireAsync(t, ctx, g, "light1", "light", backend, out)
	var order []string
	release := hold
	for range 7 {
		release()
		got := recv(t, out)
		require.NoError(t, got.err)
		order = append(order, got.id)
		release = got.release
	}
	assert.Equal(t, []string{"heavy0", "light0", "heavy1", "light1", "heavy2", "heavy3", "heavy4"}, order)
}

func TestGateTenantLimitDoesNotBlockOthers(t *testing.T) {
	g := NewGate(newFakeClock(), 100, time.Minute)
	ctx := context.Background()
	slotsFor := func(tenant string) []Slot {
		return []Slot{{Key: "t:" + tenant, Limit: 1}, {Key: "b", Limit: 3, Backend: true}}
	}
	_, err := g.Acquire(ctx, "a", slotsFor("a"))
	require.NoError(t, err)
	out := make(chan acquired, 1)
	acquireAsync(t, ctx, g, "a2", "a", slotsFor("a"), out)
	// a's queued head is blocked by a's own limit; b passes it because the
	// backend has room.
	_, err = g.Acquire(ctx, "b", slotsFor("b"))
	require.NoError(t, err)
	assert.Equal(t, 1, g.Waiting())
}

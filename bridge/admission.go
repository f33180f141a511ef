package bridge

import (
	"context"
	"sync"
	"time"
)

// admission is the bridge's in-flight window toward the gateway, shared by
// all its sources: additive increase, multiplicative decrease (AIMD, as
// TCP). The window grows by one after a window's worth of successes and
// halves when the gateway answers 429 or 503 (limits, saturation from
// picking, drain), at most once per cooldown so one burst of refusals
// counts once. A backlog therefore drains at the rate the backends
// sustain instead of flooding them. Safe for concurrent use.
type admission struct {
	mu       sync.Mutex
	cond     chan struct{} // closed and replaced when room may have opened
	max      int
	limit    float64
	inFlight int
	cutAt    time.Time
	cooldown time.Duration
	now      func() time.Time
}

// initialWindow is where the window starts, below max so that a cold
// bridge probes the gateway before it fills max_in_flight.
const initialWindow = 4

func newAdmission(max int, now func() time.Time) *admission {
	return &admission{cond: make(chan struct{}), max: max, limit: float64(min(max, initialWindow)), cooldown: time.Second, now: now}
}

// acquire reserves between 1 and want slots, waiting while the window is
// full; it returns 0 only when ctx ends.
func (a *admission) acquire(ctx context.Context, want int) int {
	for {
		a.mu.Lock()
		free := int(a.limit) - a.inFlight
		if free > 0 {
			n := min(free, want)
			a.inFlight += n
			a.mu.Unlock()
			return n
		}
		wait := a.cond
		a.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0
		case <-wait:
		}
	}
}

// release returns n slots unused.
func (a *admission) release(n int) {
	a.mu.Lock()
	a.inFlight -= n
	a.wake()
	a.mu.Unlock()
}

// done returns one slot and feeds the outcome back: ok grows the window,
// overloaded shrinks it; neither (a refusal, a transport error) leaves it.
func (a *admission) done(ok, overloaded bool) {
	a.mu.Lock()
	a.inFlight--
	switch {
	case ok:
		a.limit = min(float64(a.max), a.limit+1/a.limit)
	case overloaded:
		if now := a.now(); now.Sub(a.cutAt) >= a.cooldown {
			a.cutAt = now
			a.limit = max(1, a.limit/2)
		}
	}
	a.wake()
	a.mu.Unlock()
}

// window returns the current window and the slots in use.
func (a *admission) window() (limit, inFlight int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return int(a.limit), a.inFlight
}

// wake lets every waiter look again; a.mu is held.
func (a *admission) wake() {
	close(a.cond)
	a.cond = make(chan struct{})
}

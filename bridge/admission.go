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
// counts once. A success whose time to response headers is over 1.5 times
// the lowest seen lately (plus queueSlack) means the request queued in the
// gateway (limits.queue, picking saturation): the window then shrinks by
// one per window instead of growing, so the bridge keeps the gateway's
// queues short and its own backlog in the broker. A backlog therefore
// drains at the rate the backends sustain instead of flooding them. Safe
// for concurrent use.
type admission struct {
	mu       sync.Mutex
	cond     chan struct{} // closed and replaced when room may have opened
	max      int
	limit    float64
	inFlight int
	cutAt    time.Time
	cooldown time.Duration
	now      func() time.Time
	// base is the lowest time to headers of this period and the last:
	// the latency of a request that did not queue.
	baseCur, basePrev time.Duration
	periodAt          time.Time
}

// queueSlack is latency above 1.5 times the base that is not yet queueing
// (scheduling noise on fast paths); basePeriod is how long a lowest
// latency counts, so a slower backend is relearned.
const (
	queueSlack = 10 * time.Millisecond
	basePeriod = 30 * time.Second
)

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

// done returns one slot and feeds the outcome back: ok grows the window
// (or, when ttfb shows queueing, shrinks it by one per window),
// overloaded halves it; neither (a refusal, a transport error) leaves it.
// ttfb is the success's time to response headers.
func (a *admission) done(ok, overloaded bool, ttfb time.Duration) {
	a.mu.Lock()
	a.inFlight--
	switch {
	case ok && a.queued(ttfb):
		a.limit = max(1, a.limit-1/a.limit)
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

// queued records ttfb and reports whether it shows queueing; a.mu is held.
func (a *admission) queued(ttfb time.Duration) bool {
	if now := a.now(); now.Sub(a.periodAt) >= basePeriod {
		a.periodAt, a.basePrev, a.baseCur = now, a.baseCur, 0
	}
	if ttfb <= 0 {
		return false
	}
	if a.baseCur == 0 || ttfb < a.baseCur {
		a.baseCur = ttfb
	}
	base := a.baseCur
	if a.basePrev > 0 {
		base = min(base, a.basePrev)
	}
	return ttfb > base+base/2+queueSlack
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

// Window is the bridge's AIMD admission window for other callers of the
// gateway that queue bulk work (the Batch API, package batch): the same
// rules, one instance per caller. Safe for concurrent use.
type Window struct{ a *admission }

// NewWindow returns a window of at most max requests in flight.
func NewWindow(max int) *Window { return &Window{a: newAdmission(max, time.Now)} }

// Acquire waits for one slot; false when ctx ended first.
func (w *Window) Acquire(ctx context.Context) bool { return w.a.acquire(ctx, 1) == 1 }

// Done returns the slot with the request's outcome: ok (a 2xx, with its
// time to response headers ttfb), overloaded (429, 503) or neither.
func (w *Window) Done(ok, overloaded bool, ttfb time.Duration) { w.a.done(ok, overloaded, ttfb) }

// Size returns the current window and the slots in use.
func (w *Window) Size() (limit, inFlight int) { return w.a.window() }

// RetryAfter reads a Retry-After header (seconds or an HTTP date) as a
// delay from now, capped at an hour; 0 when absent or unreadable.
func RetryAfter(h string, now time.Time) time.Duration { return retryAfter(h, now) }

package picking

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamgate/streamgate/config"
)

// Priority is a request's criticality under saturation, as the Gateway API
// Inference Extension's: waiters leave a backend's queue critical first,
// then standard, each in arrival order; sheddable requests never wait for
// a saturated backend.
type Priority uint8

// Priorities, lowest first.
const (
	Sheddable Priority = iota
	Standard
	Critical
	numPriorities
)

var priorityNames = [numPriorities]string{config.PrioritySheddable, config.PriorityStandard, config.PriorityCritical}

// String is the priority's config name.
func (p Priority) String() string {
	if p < numPriorities {
		return priorityNames[p]
	}
	return "unknown"
}

// ParsePriority reads a config or header priority name; "" is Standard.
func ParsePriority(s string) (Priority, bool) {
	if s == "" {
		return Standard, true
	}
	for i, n := range priorityNames {
		if s == n {
			return Priority(i), true
		}
	}
	return Standard, false
}

// Sentinels Backend.Wait returns; match with errors.Is.
var (
	// ErrShed: a sheddable request met a saturated backend (HTTP 429).
	ErrShed = errors.New("sheddable request shed: every endpoint is saturated")
	// ErrSaturated: the backend stayed saturated for the whole wait, or
	// its queue was full (HTTP 503).
	ErrSaturated = errors.New("every endpoint stayed saturated")
)

// Shed reasons, the reason label of streamgate_picking_shed_total.
const (
	shedSheddable = iota // a sheddable request under saturation
	shedQueueFull        // saturation.max_waiting requests already wait
	shedMaxWait          // saturation.max_wait passed
	numShedReasons
)

var shedReasons = [numShedReasons]string{"sheddable", "queue_full", "max_wait"}

// waitQueue holds the requests waiting for room on one backend, one FIFO
// list per priority. It outlives reloads (the pool hands it to every
// Backend built for the same name), so waiters survive one. Room is looked
// for on each event that may bring it, one waiter per event: a scrape of
// one of the backend's endpoints, the end of a request picked there, and
// the arrival of a request while the backend has room. Safe for concurrent
// use.
type waitQueue struct {
	// b is the backend's current Backend, whose thresholds and endpoints
	// decide saturation.
	b atomic.Pointer[Backend]
	// n is the number of waiters, read without the lock by wake.
	n     atomic.Int64
	sheds [numShedReasons]prometheus.Counter
	// now is the clock wake judges scrapes' freshness by (nil: time.Now).
	now func() time.Time

	mu    sync.Mutex
	lists [numPriorities][]*waiter
}

// waiter is one waiting request; ready closes when it is let go.
type waiter struct {
	ready   chan struct{}
	granted bool
}

// Wait holds a request of priority prio while b is saturated (every
// endpoint with fresh metrics past the thresholds, Saturated) or others
// wait before it, for at most maxWait (the caller bounds it by
// saturation.max_wait and what is left of its ext_proc message budget). It
// returns nil when the request may be picked for and sent, ErrShed at once
// for a sheddable request while b is saturated, ErrSaturated when the
// queue is full or maxWait passes, or ctx's error when the request's
// stream ends first. A waiter leaves the queue on every return: nothing
// is left behind on timeout or cancel. Safe for concurrent use; cost
// without waiters and without saturation: one scan of the endpoints'
// stored scrapes.
func (b *Backend) Wait(ctx context.Context, prio Priority, maxWait time.Duration, now time.Time) error {
	q := b.q
	if prio >= numPriorities {
		prio = Standard
	}
	q.mu.Lock()
	sat := b.Saturated(now)
	if !sat && q.n.Load() == 0 {
		q.mu.Unlock()
		return nil
	}
	switch {
	case sat && prio == Sheddable:
		q.mu.Unlock()
		q.shed(shedSheddable)
		return ErrShed
	case q.n.Load() >= int64(max(b.cfg.Saturation.MaxWaiting, 1)):
		q.mu.Unlock()
		q.shed(shedQueueFull)
		return ErrSaturated
	}
	w := &waiter{ready: make(chan struct{})}
	q.lists[prio] = append(q.lists[prio], w)
	q.n.Add(1)
	if !sat {
		q.grantLocked() // room now, with others waiting: the first goes
	}
	q.mu.Unlock()

	t := time.NewTimer(maxWait)
	defer t.Stop()
	var err error
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
		err = ErrSaturated
	}
	return q.leave(w, prio, err)
}

// leave ends w's wait, which gave up with err (ctx's error, or
// ErrSaturated at max wait), and returns what Wait returns: nil if w was
// let go meanwhile and only its max wait passed, else err. A waiter let go
// whose stream ended hands its turn to the next waiter.
func (q *waitQueue) leave(w *waiter, prio Priority, err error) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case w.granted && errors.Is(err, ErrSaturated):
		return nil
	case w.granted:
		q.grantLocked() // the room it was let go for is still there
		return err
	}
	q.remove(prio, w)
	if errors.Is(err, ErrSaturated) {
		q.shed(shedMaxWait)
	}
	return err
}

// Saturated reports whether every endpoint of b has fresh metrics past one
// of its saturation thresholds at now: false when no threshold is set or
// some endpoint is stale (its load is unknown, so not known to be full).
// It is the test Pick's Result.Saturated makes. Cost: one read of each
// endpoint's stored scrape.
func (b *Backend) Saturated(now time.Time) bool {
	sat := b.cfg.Saturation
	if (sat.Queue <= 0 && sat.KVCache <= 0) || len(b.eps) == 0 {
		return false
	}
	for _, e := range b.eps {
		m, fresh := e.Fresh(now, b.cfg.StaleAfter)
		if !fresh || !isFull(sat, bounded(m.Waiting, maxWaiting), bounded(m.KVCache, 1)) {
			return false
		}
	}
	return true
}

// isFull says whether an endpoint with waiting requests and KV-cache use kv
// (both sanitized) is past a threshold of sat.
func isFull(sat config.PickSaturation, waiting, kv float64) bool {
	return (sat.Queue > 0 && waiting >= sat.Queue) || (sat.KVCache > 0 && kv >= sat.KVCache)
}

// Queued reports whether requests wait for room on b. Cost: one atomic
// load.
func (b *Backend) Queued() bool { return b.q.n.Load() > 0 }

// Waiting returns how many requests of each priority wait, indexed by
// Priority.
func (b *Backend) Waiting() (n [numPriorities]int) {
	q := b.q
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := range q.lists {
		n[i] = len(q.lists[i])
	}
	return n
}

// wake lets the first waiter go if the backend has room now. Called on
// every event that may bring room; without waiters it costs one atomic
// load.
func (q *waitQueue) wake() {
	if q == nil || q.n.Load() == 0 {
		return
	}
	now := time.Now
	if q.now != nil {
		now = q.now
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if b := q.b.Load(); b != nil && !b.Saturated(now()) {
		q.grantLocked()
	}
}

// grantLocked lets the first waiter of the highest priority go. Caller
// holds mu.
func (q *waitQueue) grantLocked() {
	for p := numPriorities - 1; ; p-- {
		if l := q.lists[p]; len(l) > 0 {
			w := l[0]
			l[0] = nil
			q.lists[p] = l[1:]
			q.n.Add(-1)
			w.granted = true
			close(w.ready)
			return
		}
		if p == 0 {
			return
		}
	}
}

// remove drops a waiter that gave up. Caller holds mu.
func (q *waitQueue) remove(p Priority, w *waiter) {
	l := q.lists[p]
	for i, x := range l {
		if x == w {
			copy(l[i:], l[i+1:])
			l[len(l)-1] = nil
			q.lists[p] = l[:len(l)-1]
			q.n.Add(-1)
			return
		}
	}
}

// shed counts a refusal by reason.
func (q *waitQueue) shed(reason int) {
	if c := q.sheds[reason]; c != nil {
		c.Inc()
	}
}

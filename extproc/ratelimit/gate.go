package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Slot is one concurrency pool a request needs a place in.
type Slot struct {
	Key string
	// Limit is how many may hold the slot at once; 0 or less: no cap.
	Limit int
	// Backend marks backend capacity (503 when exhausted) rather than a
	// tenant's own limit (429).
	Backend bool
	// owner is the tenant (or, for Backend, the backend) and model the
	// tenant × model pool's model: what a reload re-reads Limit from.
	owner, model string
	// service is the tenant × service pool's service (limitsservice.go).
	service string
}

// Gate holds concurrency slots and a bounded queue of requests waiting
// for them. Waiters are served round-robin across tenants (each tenant's
// own waiters in arrival order), so a tenant that floods the queue delays
// another tenant by at most one slot turn. Safe for concurrent use.
type Gate struct {
	clock   Clock
	size    int
	maxWait time.Duration

	mu      sync.Mutex
	inUse   map[string]int
	queues  map[string][]*waiter
	ring    []string // tenants with waiters
	next    int      // ring index served next
	waiting int
}

type waiter struct {
	slots   []Slot
	ready   chan struct{}
	granted bool
}

// NewGate returns a Gate whose queue holds at most size waiters, each for
// at most maxWait.
func NewGate(clock Clock, size int, maxWait time.Duration) *Gate {
	return &Gate{clock: clock, size: size, maxWait: maxWait, inUse: map[string]int{}, queues: map[string][]*waiter{}}
}

// Acquire takes a place in every slot, waiting in the queue when one is
// full. It returns a release func that must be called exactly once (extra
// calls do nothing), or a *DeniedError wrapping ErrTenantBusy or
// ErrBackendBusy when the queue is full or maxWait passes, or ctx's error
// when ctx ends first. With no slots it returns at once.
func (g *Gate) Acquire(ctx context.Context, tenant string, slots []Slot) (func(), error) {
	if len(slots) == 0 {
		return func() {}, nil
	}
	g.mu.Lock()
	maxWait := g.maxWait
	if g.waiting == 0 && g.fits(slots) {
		g.take(slots)
		g.mu.Unlock()
		return g.releaser(slots), nil
	}
	if g.waiting >= g.size {
		err := g.denied(slots)
		g.mu.Unlock()
		return nil, err
	}
	w := &waiter{slots: slots, ready: make(chan struct{})}
	if len(g.queues[tenant]) == 0 {
		g.ring = append(g.ring, tenant)
	}
	g.queues[tenant] = append(g.queues[tenant], w)
	g.waiting++
	g.dispatch()
	g.mu.Unlock()

	var err error
	select {
	case <-w.ready:
		return g.releaser(slots), nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-g.clock.After(maxWait):
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if w.granted {
		if err != nil {
			g.free(slots)
			return nil, err
		}
		return g.releaser(slots), nil
	}
	g.remove(tenant, w)
	if err != nil {
		return nil, err
	}
	return nil, g.denied(slots)
}

// Configure changes the queue's bounds and the caps of the requests
// waiting in it (limit gives a slot's new Limit; 0: no cap), then admits
// whoever now fits. Slots already held stay held and are freed by their
// release as usual: a pool whose cap shrank below its holders admits no
// one until enough of them are gone. A request already waiting keeps the
// deadline it started with; size bounds only requests that join later.
func (g *Gate) Configure(size int, maxWait time.Duration, limit func(Slot) int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.size, g.maxWait = size, maxWait
	for _, q := range g.queues {
		for _, w := range q {
			for i := range w.slots {
				w.slots[i].Limit = limit(w.slots[i])
			}
		}
	}
	g.dispatch()
}

// Waiting returns how many requests are queued.
func (g *Gate) Waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting
}

func (g *Gate) releaser(slots []Slot) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.free(slots)
			g.mu.Unlock()
		})
	}
}

func (g *Gate) fits(slots []Slot) bool {
	for _, s := range slots {
		if s.Limit > 0 && g.inUse[s.Key] >= s.Limit {
			return false
		}
	}
	return true
}

func (g *Gate) take(slots []Slot) {
	for _, s := range slots {
		g.inUse[s.Key]++
	}
}

// free returns slots and admits whoever they unblock. Caller holds mu.
func (g *Gate) free(slots []Slot) {
	for _, s := range slots {
		if g.inUse[s.Key]--; g.inUse[s.Key] <= 0 {
			delete(g.inUse, s.Key)
		}
	}
	g.dispatch()
}

// dispatch admits queued heads round-robin across tenants until none
// fits. Caller holds mu.
func (g *Gate) dispatch() {
	for g.waiting > 0 {
		admitted := false
		for i := range len(g.ring) {
			idx := (g.next + i) % len(g.ring)
			tenant := g.ring[idx]
			q := g.queues[tenant]
			w := q[0]
			if !g.fits(w.slots) {
				continue
			}
			g.take(w.slots)
			w.granted = true
			close(w.ready)
			g.pop(tenant, idx)
			admitted = true
			break
		}
		if !admitted {
			return
		}
	}
}

// pop removes the head of tenant's queue (at ring index idx) and moves the
// turn to the next tenant.
func (g *Gate) pop(tenant string, idx int) {
	q := g.queues[tenant]
	q[0] = nil
	g.queues[tenant] = q[1:]
	g.waiting--
	if len(g.queues[tenant]) == 0 {
		delete(g.queues, tenant)
		g.ring = append(g.ring[:idx], g.ring[idx+1:]...)
		if len(g.ring) > 0 {
			g.next = idx % len(g.ring)
		} else {
			g.next = 0
		}
		return
	}
	g.next = (idx + 1) % len(g.ring)
}

// remove drops a waiter that gave up. Caller holds mu.
func (g *Gate) remove(tenant string, w *waiter) {
	q := g.queues[tenant]
	for i, x := range q {
		if x != w {
			continue
		}
		g.queues[tenant] = append(q[:i:i], q[i+1:]...)
		g.waiting--
		if len(g.queues[tenant]) == 0 {
			delete(g.queues, tenant)
			for j, t := range g.ring {
				if t == tenant {
					g.ring = append(g.ring[:j], g.ring[j+1:]...)
					if g.next > j {
						g.next--
					}
					break
				}
			}
			if g.next >= len(g.ring) {
				g.next = 0
			}
		}
		break
	}
	// The next waiter of this tenant may fit where the removed one did not.
	g.dispatch()
}

// denied says which limit blocks slots: the tenant's own (429) before the
// backend's (503).
func (g *Gate) denied(slots []Slot) error {
	kind, what := ErrBackendBusy, "backend in-flight streams"
	for _, s := range slots {
		if !s.Backend && s.Limit > 0 && g.inUse[s.Key] >= s.Limit {
			kind, what = ErrTenantBusy, "concurrent streams"
			break
		}
	}
	return &DeniedError{Kind: kind, RetryAfter: g.maxWait, What: what}
}

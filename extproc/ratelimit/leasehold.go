package ratelimit

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// leaseGroup is the pools of one request in one Redis hash slot: the
// tenant's pools, or the backend's.
type leaseGroup struct {
	pools []leasePool
	slots []Slot
	held  []*heldPool
}

// groups splits slots into the tenant's pools and the backend's (one
// group on a single server), with the caps in force (pools without a cap
// take no lease).
func (l *Leases) groups(slots []Slot) []*leaseGroup {
	limit := func(s Slot) int { return s.Limit }
	if f := l.limit.Load(); f != nil {
		limit = *f
	}
	var tenant, backend *leaseGroup
	for _, s := range slots {
		n := limit(s)
		if n <= 0 {
			continue
		}
		key, g := l.poolKey(s), &tenant
		if s.Backend {
			g = &backend
		}
		if *g == nil {
			*g = &leaseGroup{}
		}
		(*g).pools = append((*g).pools, leasePool{key: key, limit: n, fair: s.Backend})
		(*g).slots = append((*g).slots, s)
	}
	if tenant != nil && backend != nil && !l.cluster {
		// One server runs a script over any keys: one call, not two.
		tenant.pools = append(tenant.pools, backend.pools...)
		tenant.slots = append(tenant.slots, backend.slots...)
		backend = nil
	}
	var out []*leaseGroup
	for _, g := range []*leaseGroup{tenant, backend} {
		if g != nil {
			out = append(out, g)
		}
	}
	return out
}

// poolKey is the Redis key stem of slot's pool: the tenant's pools carry
// the tenant's hash tag (Slot.Key), a backend's its own.
func (l *Leases) poolKey(s Slot) string {
	if s.Backend {
		return l.store.prefix + "b:{" + s.owner + "}"
	}
	return l.store.prefix + s.Key
}

// try takes every slot or none, in one script call per hash slot. It
// returns the release, or the slot that refused, or the store's error.
func (l *Leases) try(ctx context.Context, tenant string, slots []Slot, more bool) (func(), *Slot, error) {
	groups := l.groups(slots)
	for i, g := range groups {
		ok, at, _, err := l.take(ctx, tenant, g, more)
		if err == nil && ok {
			continue
		}
		for _, done := range groups[:i] {
			l.give(tenant, done)
		}
		if err != nil {
			return nil, nil, err
		}
		return nil, &g.slots[at], nil
	}
	n := 0
	for _, g := range groups {
		n += len(g.pools)
	}
	l.held.Add(float64(n))
	var once sync.Once
	return func() {
		once.Do(func() {
			for _, g := range groups {
				l.give(tenant, g)
			}
			l.held.Sub(float64(n))
			var keys []string
			for _, g := range groups {
				for _, p := range g.pools {
					keys = append(keys, p.key)
				}
			}
			l.wakeHeads(keys)
		})
	}, nil, nil
}

// take runs the acquire script for g and counts the grant locally, both
// under g's pools' shared locks (the heartbeat cannot run in between).
func (l *Leases) take(ctx context.Context, tenant string, g *leaseGroup, more bool) (bool, int, int, error) {
	g.held = l.use(g.pools)
	for _, p := range g.held {
		p.rw.RLock()
	}
	ok, at, why, err := l.store.acquireLeases(ctx, l.replica, tenant, l.ttl, leaseDemand, more, g.pools)
	for _, p := range g.held {
		p.mu.Lock()
		if ok {
			p.counts[tenant]++
		}
		if ok || err != nil {
			// A call that failed may have run: the heartbeat reports the truth.
			p.touched[tenant] = true
		}
		p.mu.Unlock()
		p.rw.RUnlock()
	}
	if !ok {
		l.unuse(g.held)
	}
	return ok, at, why, err
}

// give releases g's slots in Redis and locally. A release that fails is
// corrected by the next heartbeat.
func (l *Leases) give(tenant string, g *leaseGroup) {
	for _, p := range g.held {
		p.rw.RLock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), adjustTimeout)
	_ = l.store.releaseLeases(ctx, l.replica, tenant, g.pools)
	cancel()
	for _, p := range g.held {
		p.mu.Lock()
		if p.counts[tenant]--; p.counts[tenant] <= 0 {
			delete(p.counts, tenant)
		}
		p.touched[tenant] = true
		p.mu.Unlock()
		p.rw.RUnlock()
	}
	l.unuse(g.held)
}

// use returns the local records of pools (sorted by key, created when
// new), marking them in use so the heartbeat keeps them.
func (l *Leases) use(pools []leasePool) []*heldPool {
	out := make([]*heldPool, len(pools))
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, lp := range pools {
		p := l.pools[lp.key]
		if p == nil {
			p = &heldPool{key: lp.key, counts: map[string]int{}, touched: map[string]bool{}}
			l.pools[lp.key] = p
		}
		p.users++
		out[i] = p
	}
	slices.SortFunc(out, func(a, b *heldPool) int { return strings.Compare(a.key, b.key) })
	return out
}

func (l *Leases) unuse(pools []*heldPool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range pools {
		p.users--
	}
}

// beat renews this replica's leases every TTL/leaseBeats until ctx ends.
func (l *Leases) beat(ctx context.Context) {
	t := time.NewTicker(l.ttl / leaseBeats)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.Heartbeat(ctx)
		}
	}
}

// Heartbeat sets every pool this replica holds (or held since the last
// heartbeat) to its own counts and renews their expiry. It runs on its own
// every TTL/5; tests call it directly.
func (l *Leases) Heartbeat(ctx context.Context) {
	l.mu.Lock()
	pools := make([]*heldPool, 0, len(l.pools))
	for _, p := range l.pools {
		pools = append(pools, p)
	}
	l.mu.Unlock()
	for _, p := range pools {
		p.rw.Lock()
		p.mu.Lock()
		counts := make(map[string]int, len(p.touched)+len(p.counts))
		for t := range p.touched {
			counts[t] = 0
		}
		for t, c := range p.counts {
			counts[t] = c
		}
		p.mu.Unlock()
		cctx, cancel := context.WithTimeout(ctx, adjustTimeout)
		err := l.store.heartbeatLeases(cctx, l.replica, p.key, l.ttl, counts)
		cancel()
		p.mu.Lock()
		if err == nil {
			clear(p.touched)
			for t := range p.counts {
				p.touched[t] = true
			}
		}
		idle := len(p.touched) == 0
		p.mu.Unlock()
		p.rw.Unlock()
		if idle {
			l.mu.Lock()
			if p.users == 0 && l.pools[p.key] == p {
				delete(l.pools, p.key)
			}
			l.mu.Unlock()
		}
	}
}

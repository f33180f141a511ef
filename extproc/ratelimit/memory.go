package ratelimit

import (
	"context"
	"strings"
	"sync"
)

// sweepEvery is how many new buckets a MemoryStore creates between sweeps
// of buckets that have refilled completely.
const sweepEvery = 4096

// MemoryStore keeps GCRA buckets in this process. The zero value is not
// usable; call NewMemoryStore. Safe for concurrent use; one mutex
// serializes all calls (a call costs well under a microsecond).
type MemoryStore struct {
	clock Clock
	mu    sync.Mutex
	tats  map[string]int64
	added int
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store reading time from clock.
func NewMemoryStore(clock Clock) *MemoryStore {
	return &MemoryStore{clock: clock, tats: map[string]int64{}}
}

// Reserve applies all charges or none. It never fails.
func (s *MemoryStore) Reserve(_ context.Context, charges []Charge) (Decision, error) {
	var g gcra
	now := s.clock.Now().UnixNano()
	d := Decision{Allowed: true, States: make([]State, len(charges))}
	s.mu.Lock()
	defer s.mu.Unlock()
	var newTATs [8]int64
	next := newTATs[:0]
	for _, c := range charges {
		n, ok, wait := g.try(s.tats[c.Key], now, c)
		if !ok {
			d.Allowed = false
			d.RetryAfter = max(d.RetryAfter, wait)
		}
		next = append(next, n)
	}
	for i, c := range charges {
		if !d.Allowed {
			d.States[i] = g.state(s.tats[c.Key], now, c.Rule)
			continue
		}
		if _, ok := s.tats[c.Key]; !ok {
			s.added++
		}
		s.tats[c.Key] = next[i]
		d.States[i] = g.state(next[i], now, c.Rule)
	}
	if s.added >= sweepEvery {
		s.sweep(now)
	}
	return d, nil
}

// Adjust applies each charge without a limit check. It never fails.
func (s *MemoryStore) Adjust(_ context.Context, charges []Charge) error {
	var g gcra
	now := s.clock.Now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range charges {
		if c.Cost == 0 {
			continue
		}
		s.tats[c.Key] = g.adjust(s.tats[c.Key], now, c)
	}
	return nil
}

// Forget drops the buckets of every tenant limited reports false for
// (keys start with the tenant in braces: Limiter.plan). One pass over the
// store, under its lock; a reload calls it, never a request.
func (s *MemoryStore) Forget(limited func(tenant string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.tats {
		if tenant, ok := keyTenant(k); ok && !limited(tenant) {
			delete(s.tats, k)
		}
	}
}

// keyTenant returns the tenant of a bucket key "{tenant}:...".
func keyTenant(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, "{")
	if !ok {
		return "", false
	}
	tenant, _, ok := strings.Cut(rest, "}")
	return tenant, ok
}

// sweep drops buckets that are full again: they hold no information.
func (s *MemoryStore) sweep(now int64) {
	for k, tat := range s.tats {
		if tat <= now {
			delete(s.tats, k)
		}
	}
	s.added = 0
}

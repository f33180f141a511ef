package budget

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"
)

// sweepEvery is how many writes a MemoryStore takes between sweeps of
// expired counters and series buckets.
const sweepEvery = 4096

// MemoryStore keeps counters in this process: each replica has its own.
// Safe for concurrent use; one mutex serializes calls.
type MemoryStore struct {
	now     func() time.Time
	mu      sync.Mutex
	hashes  map[string]*memHash
	tenants map[string]time.Time
	writes  int
}

var _ Store = (*MemoryStore)(nil)

// memHash is one counter or series bucket: the fields of the Redis hash
// RedisStore keeps.
type memHash struct {
	expireAt time.Time
	total    int64
	slices   map[int64]int64
	// warned: the calendar window's warning was given; warnSlice: the
	// slice of a rolling window's last warning (-1: none).
	warned    bool
	warnSlice int64
	usage     map[usageKey]*Usage
}

type usageKey struct{ key, model string }

// NewMemoryStore returns an empty store reading time from now (time.Now when nil).
func NewMemoryStore(now func() time.Time) *MemoryStore {
	if now == nil {
		now = time.Now
	}
	return &MemoryStore{now: now, hashes: map[string]*memHash{}, tenants: map[string]time.Time{}}
}

// get returns key's hash, nil when absent or expired.
func (s *MemoryStore) get(key string) *memHash {
	h := s.hashes[key]
	if h != nil && !h.expireAt.IsZero() && !s.now().Before(h.expireAt) {
		delete(s.hashes, key)
		return nil
	}
	return h
}

func (s *MemoryStore) create(key string) *memHash {
	h := s.get(key)
	if h == nil {
		h = &memHash{warnSlice: -1}
		s.hashes[key] = h
	}
	s.writes++
	return h
}

// spent is the counter's spend; a rolling one drops slices out of its window.
func (h *memHash) spent(c Counter) (spent, oldest int64) {
	if h == nil {
		return 0, -1
	}
	if !c.rolling() {
		return h.total, -1
	}
	oldest = -1
	for idx, v := range h.slices {
		if idx <= c.Slice-rollingSlices {
			delete(h.slices, idx)
			continue
		}
		spent += v
		if v > 0 && (oldest < 0 || idx < oldest) {
			oldest = idx
		}
	}
	return spent, oldest
}

// Reserve charges cost to every counter or to none. It never fails.
func (s *MemoryStore) Reserve(_ context.Context, counters []Counter, cost int64) (Decision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := Decision{Allowed: true, States: make([]State, len(counters))}
	for i, c := range counters {
		spent, oldest := s.get(c.Key).spent(c)
		d.States[i] = State{Spent: spent, Oldest: oldest}
		if spent+cost > c.Limit {
			d.Allowed = false
		}
	}
	if !d.Allowed {
		return d, nil
	}
	now := s.now()
	for i, c := range counters {
		h := s.create(c.Key)
		st := &d.States[i]
		st.Spent += cost
		if c.rolling() {
			if h.slices == nil {
				h.slices = map[int64]int64{}
			}
			h.slices[c.Slice] += cost
			h.expireAt = now.Add(c.TTL)
		} else {
			h.total += cost
			h.expireAt = c.ExpireAt
		}
		st.Warned = h.warn(c, st.Spent)
	}
	s.maybeSweep()
	return d, nil
}

// warn reports whether spent crosses c's warning first in its window.
func (h *memHash) warn(c Counter, spent int64) bool {
	if c.Warn <= 0 || spent < c.Warn {
		return false
	}
	if c.rolling() {
		if h.warnSlice >= 0 && c.Slice-h.warnSlice < rollingSlices {
			return false
		}
		h.warnSlice = c.Slice
		return true
	}
	if h.warned {
		return false
	}
	h.warned = true
	return true
}

// Settle applies s. It never fails.
func (s *MemoryStore) Settle(_ context.Context, st Settlement) ([]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	warned := make([]bool, len(st.Counters))
	now := s.now()
	for i, c := range st.Counters {
		h := s.get(c.Key)
		switch {
		case h == nil && st.Delta <= 0:
			continue // the window is gone: nothing to give back
		case h == nil:
			// Charged unreserved (the store was down at admission).
			h = s.create(c.Key)
			h.expireAt = c.ExpireAt
			if c.rolling() {
				h.expireAt = now.Add(c.TTL)
			}
		}
		var spent int64
		if c.rolling() {
			if h.slices == nil {
				h.slices = map[int64]int64{}
			}
			h.slices[c.Slice] = max(h.slices[c.Slice]+st.Delta, 0)
			spent, _ = h.spent(c)
		} else {
			h.total = max(h.total+st.Delta, 0)
			spent = h.total
			if !st.Refund {
				h.add(usageKey{model: st.Spend.Model}, st.Spend)
			}
		}
		if st.Delta > 0 {
			warned[i] = h.warn(c, spent)
		}
	}
	for _, b := range st.Series {
		if st.Refund {
			break
		}
		h := s.create(b.Key)
		h.expireAt = b.ExpireAt
		h.add(usageKey{st.Spend.Key, st.Spend.Model}, st.Spend)
	}
	s.maybeSweep()
	return warned, nil
}

func (h *memHash) add(k usageKey, sp Spend) {
	if h.usage == nil {
		h.usage = map[usageKey]*Usage{}
	}
	u := h.usage[k]
	if u == nil {
		u = &Usage{Key: k.key, Model: k.model}
		h.usage[k] = u
	}
	u.Cost += sp.Cost
	u.Input += sp.Input
	u.Output += sp.Output
	u.Requests++
}

func (h *memHash) usages() []Usage {
	if h == nil {
		return nil
	}
	out := make([]Usage, 0, len(h.usage))
	for _, u := range h.usage {
		out = append(out, *u)
	}
	sortUsage(out)
	return out
}

// Read returns the counters' usage.
func (s *MemoryStore) Read(_ context.Context, counters []Counter) ([]CounterUsage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]CounterUsage, len(counters))
	for i, c := range counters {
		h := s.get(c.Key)
		out[i].Spent, out[i].Oldest = h.spent(c)
		if !c.rolling() {
			out[i].Models = h.usages()
		}
	}
	return out, nil
}

// Series returns each bucket's usage.
func (s *MemoryStore) Series(_ context.Context, keys []string) ([][]Usage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]Usage, len(keys))
	for i, k := range keys {
		out[i] = s.get(k).usages()
	}
	return out, nil
}

// Seen records tenant as spending at at.
func (s *MemoryStore) Seen(_ context.Context, tenant string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tenants[tenant] = at
	return nil
}

// Tenants lists the tenants seen since since, sorted.
func (s *MemoryStore) Tenants(_ context.Context, since time.Time) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for t, at := range s.tenants {
		if at.Before(since) {
			delete(s.tenants, t)
			continue
		}
		out = append(out, t)
	}
	sort.Strings(out)
	return out, nil
}

// maybeSweep drops expired hashes every sweepEvery writes.
func (s *MemoryStore) maybeSweep() {
	if s.writes < sweepEvery {
		return
	}
	s.writes = 0
	now := s.now()
	for k, h := range s.hashes {
		if !h.expireAt.IsZero() && !now.Before(h.expireAt) {
			delete(s.hashes, k)
		}
	}
}

// sortUsage orders usage by key, then model.
func sortUsage(us []Usage) {
	sort.Slice(us, func(i, j int) bool {
		if c := strings.Compare(us[i].Key, us[j].Key); c != 0 {
			return c < 0
		}
		return us[i].Model < us[j].Model
	})
}

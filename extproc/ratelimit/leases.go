package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Lease timing. The heartbeat renews every pool this replica holds slots
// in once per TTL/leaseBeats, so a replica survives leaseBeats-1 missed
// beats; a waiting request asks Redis again when a slot of its pools is
// freed (here, or on another replica: a published message), and every
// leasePoll in case a message was lost; a tenant refused by a full pool
// counts as waiting for it for leaseDemand after its last refusal.
const (
	DefaultLeaseTTL = 10 * time.Second
	leaseBeats      = 5
	leasePoll       = 100 * time.Millisecond
	leaseDemand     = 5 * leasePoll
)

// LeaseOptions configure concurrency slots shared through Redis.
type LeaseOptions struct {
	// TTL is how long a replica's slots outlive its last heartbeat: a
	// crashed replica's slots return within it (default DefaultLeaseTTL).
	TTL time.Duration
	// Replica names this process in Redis (default: host, pid and a
	// random suffix). It must not contain '|'.
	Replica string
	// Registerer receives the lease metrics (nil: unregistered).
	Registerer prometheus.Registerer
}

// Leases holds concurrency slots in Redis so that every gateway replica
// shares one cap per pool (see leasescript.go for the keys). Each replica
// counts its own slots per pool and tenant and, once per heartbeat, sets
// Redis to that count and renews its expiry: one call per pool it holds
// slots in, not per stream, and a release or grant whose reply was lost
// is corrected there. Requests that wait do so in this process, one
// asking Redis per tenant and slot set. Backend pools are shared fairly:
// a tenant at its share waits while another tenant waits (see
// leaseAcquireScript). Safe for concurrent use.
type Leases struct {
	store *RedisStore
	// cluster: the store is a Redis Cluster, where one script may only
	// touch one hash slot.
	cluster bool
	replica string
	ttl     time.Duration
	clock   Clock
	// local serves requests while Redis is unreachable under fail_open.
	local *Gate
	// limit re-reads a slot's cap from the config in force (Activate).
	limit atomic.Pointer[func(Slot) int]

	mu      sync.Mutex
	pools   map[string]*heldPool
	lanes   map[string]*lane
	waiting int

	held     prometheus.Gauge
	fallback prometheus.Counter
}

// heldPool is what this replica holds in one pool.
type heldPool struct {
	key string
	// rw orders count changes against the heartbeat: a call that changes
	// this replica's count in Redis holds it shared until the local count
	// matches; the heartbeat holds it alone while it sets Redis to counts.
	rw sync.RWMutex
	mu sync.Mutex // guards counts and touched
	// counts are the slots this replica holds per tenant.
	counts map[string]int
	// touched are the tenants the next heartbeat reports (0 included).
	touched map[string]bool
	users   int // calls in progress (under Leases.mu)
}

// lane is the requests of one tenant waiting in this process for one set
// of slots, in arrival order; only the head asks Redis.
type lane struct {
	keys    []string // the slots' pools (poolKey)
	waiters []*leaseWaiter
	// blocked is the slot that last refused the head: what a request
	// giving up is told.
	blocked *Slot
}

// leaseWaiter is one waiting request; wake tells it to look again.
type leaseWaiter struct{ wake chan struct{} }

// signal wakes w unless a wake is pending already.
func (w *leaseWaiter) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// ShareConcurrency makes s hold concurrency slots for every Limiter built
// on it, and renews them until ctx ends. Call it once, before New.
func (s *RedisStore) ShareConcurrency(ctx context.Context, o LeaseOptions) *Leases {
	if o.TTL <= 0 {
		o.TTL = DefaultLeaseTTL
	}
	if o.Replica == "" {
		o.Replica = newReplicaID()
	}
	_, cluster := s.client.(*redis.ClusterClient)
	l := &Leases{store: s, cluster: cluster, replica: o.Replica, ttl: o.TTL, clock: SystemClock{},
		pools: map[string]*heldPool{}, lanes: map[string]*lane{},
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamgate_concurrency_leases_held",
			Help: "Concurrency slots this process holds in Redis (shared concurrency).",
		}),
		fallback: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamgate_concurrency_local_fallback_total",
			Help: "Requests given per-process concurrency slots because Redis was unreachable (fail_open).",
		}),
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(l.held, l.fallback)
	}
	s.leases = l
	go l.beat(ctx)
	if sub, ok := s.client.(subscriber); ok {
		go l.listen(ctx, sub)
	}
	return l
}

// subscriber is a Redis client that can subscribe (go-redis's server and
// cluster clients).
type subscriber interface {
	Subscribe(ctx context.Context, channels ...string) *redis.PubSub
}

// listen wakes the requests waiting for a pool whose slot another
// replica freed, until ctx ends. The subscription reconnects by itself; a
// message lost meanwhile costs a waiting request at most one poll.
func (l *Leases) listen(ctx context.Context, sub subscriber) {
	ps := sub.Subscribe(ctx, l.store.freedChannel())
	defer ps.Close()
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			l.wakeHeads([]string{m.Payload})
		}
	}
}

// newReplicaID names this process: host, pid and 4 random bytes.
func newReplicaID() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r == '|' || r == '{' || r == '}' || r < ' ' {
			return '_'
		}
		return r
	}, host)
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + ":" + strconv.Itoa(os.Getpid()) + ":" + hex.EncodeToString(b[:])
}

// Replica is the name this process holds leases under.
func (l *Leases) Replica() string { return l.replica }

// configure puts a config's caps (and its in-process gate for outages)
// in force for requests waiting and to come.
func (l *Leases) configure(local *Gate, limit func(Slot) int) {
	l.mu.Lock()
	l.local = local
	l.mu.Unlock()
	l.limit.Store(&limit)
	l.wakeHeads(nil)
}

// Waiting is how many requests wait for leases in this process.
func (l *Leases) Waiting() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waiting
}

// Acquire takes a slot in every pool of slots, shared with the other
// replicas, waiting up to maxWait in this process's queue (at most size
// waiters). The contract is Gate.Acquire's; besides, an unreachable Redis
// fails the call with ErrStoreUnavailable, or under fail_open hands it to
// the in-process gate (per-process caps).
func (l *Leases) Acquire(ctx context.Context, tenant string, slots []Slot, size int, maxWait time.Duration) (func(), error) {
	if len(slots) == 0 {
		return func() {}, nil
	}
	key := tenant + "\x00" + slotKeys(slots)
	var w *leaseWaiter // once queued
	var deadline <-chan time.Time
	var blocked *Slot // what last refused this lane's head
	queued, tried := false, false
	defer func() {
		if queued {
			l.leave(key, w)
		}
	}()
	for {
		head, more := l.turn(key, w, queued)
		if head && !tried {
			release, b, err := l.try(ctx, tenant, slots, more)
			switch {
			case err != nil && ctx.Err() != nil:
				return nil, ctx.Err()
			case err != nil:
				return l.unreachable(ctx, tenant, slots)
			case release != nil:
				return release, nil
			}
			blocked = b
			l.refused(key, b)
			tried = true
		}
		if !queued {
			w = &leaseWaiter{wake: make(chan struct{}, 1)}
			if !l.join(key, slots, w, size, blocked) {
				return nil, deniedFor(blocked, maxWait)
			}
			queued, deadline = true, l.clock.After(maxWait)
		}
		var poll <-chan time.Time
		if head {
			poll = l.clock.After(leasePoll)
		}
		select {
		case <-w.wake:
			tried = false
		case <-poll:
			tried = false
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline:
			return nil, l.denied(key, blocked, maxWait)
		}
	}
}

// turn reports whether w (queued or about to be) is the head of lane key
// and whether others wait behind it.
func (l *Leases) turn(key string, w *leaseWaiter, queued bool) (head, more bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln := l.lanes[key]
	if ln == nil {
		return !queued, false
	}
	if !queued {
		return false, true
	}
	return ln.waiters[0] == w, len(ln.waiters) > 1
}

// refused records the slot that refused lane key's head.
func (l *Leases) refused(key string, blocked *Slot) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ln := l.lanes[key]; ln != nil {
		ln.blocked = blocked
	}
}

// denied is the refusal of a request of lane key that gave up: the slot
// that last refused the lane's head, else mine.
func (l *Leases) denied(key string, mine *Slot, maxWait time.Duration) error {
	l.mu.Lock()
	blocked := mine
	if ln := l.lanes[key]; ln != nil && ln.blocked != nil {
		blocked = ln.blocked
	}
	l.mu.Unlock()
	return deniedFor(blocked, maxWait)
}

// deniedFor is the refusal of a request that waited for blocked (nil: it
// never reached the head of its lane; its tenant's own cap is assumed).
func deniedFor(blocked *Slot, maxWait time.Duration) error {
	if blocked != nil && blocked.Backend {
		return &DeniedError{Kind: ErrBackendBusy, RetryAfter: maxWait, What: "backend in-flight streams"}
	}
	return &DeniedError{Kind: ErrTenantBusy, RetryAfter: maxWait, What: "concurrent streams"}
}

// unreachable answers a request whose lease call failed: 503 when the
// limits fail closed, per-process slots when they fail open.
func (l *Leases) unreachable(ctx context.Context, tenant string, slots []Slot) (func(), error) {
	l.mu.Lock()
	local := l.local
	l.mu.Unlock()
	if !l.store.health.failOpen.Load() || local == nil {
		return nil, &DeniedError{Kind: ErrStoreUnavailable, RetryAfter: time.Second}
	}
	l.fallback.Inc()
	return local.Acquire(ctx, tenant, slots)
}

// join queues w in lane key unless size requests wait already; blocked
// is what refused w, if it tried.
func (l *Leases) join(key string, slots []Slot, w *leaseWaiter, size int, blocked *Slot) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.waiting >= size {
		return false
	}
	ln := l.lanes[key]
	if ln == nil {
		ln = &lane{keys: make([]string, len(slots)), blocked: blocked}
		for i, s := range slots {
			ln.keys[i] = l.poolKey(s)
		}
		l.lanes[key] = ln
	}
	ln.waiters = append(ln.waiters, w)
	l.waiting++
	return true
}

// leave drops w from lane key and wakes the lane's head.
func (l *Leases) leave(key string, w *leaseWaiter) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln := l.lanes[key]
	if ln == nil {
		return
	}
	if i := slices.Index(ln.waiters, w); i >= 0 {
		ln.waiters = slices.Delete(ln.waiters, i, i+1)
		l.waiting--
	}
	if len(ln.waiters) == 0 {
		delete(l.lanes, key)
		return
	}
	ln.waiters[0].signal()
}

// wakeHeads wakes the head of every lane waiting for one of the pools
// keys (nil: every lane): a slot was freed here or on another replica
// (listen), or the caps changed.
func (l *Leases) wakeHeads(keys []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ln := range l.lanes {
		if keys == nil || slices.ContainsFunc(ln.keys, func(k string) bool { return slices.Contains(keys, k) }) {
			ln.waiters[0].signal()
		}
	}
}

// slotKeys joins the keys of slots: a lane is a tenant and the pools it waits for.
func slotKeys(slots []Slot) string {
	if len(slots) == 1 {
		return slots[0].Key
	}
	keys := make([]string, len(slots))
	for i, s := range slots {
		keys[i] = s.Key
	}
	return strings.Join(keys, "\x00")
}

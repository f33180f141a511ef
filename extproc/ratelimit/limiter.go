package ratelimit

import (
	"context"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamgate/streamgate/config"
)

// adjustTimeout bounds the store call that reconciles a finished stream:
// it runs after the client's context has ended.
const adjustTimeout = time.Second

// maxTenantLen bounds tenant names taken from a request header.
const maxTenantLen = 128

// bucket kinds, in the order charges are built.
type kind int

const (
	kindRequests kind = iota
	kindInput
	kindOutput
	kindTotal
	kindBytes // a service request's body bytes (limitsservice.go)
)

// Request is what admission needs to know about one request.
type Request struct {
	Tenant, Model, Backend string
	// Service, when set, is the service a service request is for: it is
	// charged against the tenant's limits on that service only, never its
	// model limits; Bytes is its request body size (content-length).
	Service string
	Bytes   int64
	// Input is the estimated prompt tokens; Output the reserved output tokens.
	Input, Output int64
	// Hold is the tenant's slot taken at the request headers (HoldTenant),
	// or nil; a successful Admit takes it over, a refused one leaves it to
	// the caller.
	Hold *Hold
}

// Usage is what a request consumed.
type Usage struct {
	Input, Output int64
}

// Headers are the bucket states a response reports in x-ratelimit-*;
// nil when no limit of that kind applies.
type Headers struct {
	Requests *State
	Tokens   *State
}

// Limiter admits requests against the limits of one config. Its state —
// rate buckets (the store), held and queued concurrency slots (the gate)
// and metrics — outlives the config: Reconfigured shares it with the
// Limiter of the next config. Safe for concurrent use.
type Limiter struct {
	cfg      *config.Limits
	tenants  map[string]*config.TenantLimits
	backends map[string]int
	store    Store
	gate     *Gate
	// leases, when the store shares concurrency (RedisStore.ShareConcurrency),
	// hold slots in Redis in place of gate, which serves only outages.
	leases  *Leases
	metrics *Metrics
}

// New returns a Limiter for cfg using store for rate buckets. metrics may be nil.
func New(cfg *config.Limits, store Store, clock Clock, metrics *Metrics) *Limiter {
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	l := newLimiter(cfg, store, NewGate(clock, cfg.Queue.Size, cfg.Queue.MaxWait), metrics)
	if l.leases != nil {
		l.leases.configure(l.gate, l.slotLimit)
	}
	return l
}

// Reconfigured returns a Limiter for cfg that shares l's state: tenants
// whose limits did not change keep their buckets and held slots, changed
// ones are measured by the new rates from their next request (a bucket
// keeps the share of its period it has used: GCRA stores when it is full
// again, not a count). It changes nothing shared: requests admitted by l
// still settle and release through l, and the new queue bounds and caps
// apply to requests already waiting only once the result is Activated.
func (l *Limiter) Reconfigured(cfg *config.Limits) *Limiter {
	return newLimiter(cfg, l.store, l.gate, l.metrics)
}

// Activate puts l's queue bounds and concurrency caps in force on the
// shared gate (waiting requests are measured against the new caps at
// once) and lets the store drop the buckets of tenants l no longer limits
// (Forgetter). Call it when l starts serving, after the previous Limiter.
func (l *Limiter) Activate() {
	l.gate.Configure(l.cfg.Queue.Size, l.cfg.Queue.MaxWait, l.slotLimit)
	if l.leases != nil {
		l.leases.configure(l.gate, l.slotLimit)
	}
	if f, ok := l.store.(Forgetter); ok {
		f.Forget(func(tenant string) bool { return l.tenant(tenant) != nil })
	}
	if h, ok := l.store.(interface{ setFailOpen(bool) }); ok {
		h.setFailOpen(l.failOpen())
	}
}

// Forgetter is a Store that can drop buckets nobody needs any more.
type Forgetter interface {
	// Forget drops the buckets of every tenant for which limited reports
	// false. A reservation still held against them settles as against a
	// full bucket.
	Forget(limited func(tenant string) bool)
}

func newLimiter(cfg *config.Limits, store Store, gate *Gate, metrics *Metrics) *Limiter {
	l := &Limiter{cfg: cfg, tenants: map[string]*config.TenantLimits{}, backends: map[string]int{}, store: store,
		gate: gate, metrics: metrics}
	if rs, ok := store.(*RedisStore); ok {
		l.leases = rs.leases
	}
	for i := range cfg.Tenants {
		l.tenants[cfg.Tenants[i].Name] = &cfg.Tenants[i]
	}
	for _, b := range cfg.Backends {
		if b.MaxInFlight > 0 {
			l.backends[b.Name] = b.MaxInFlight
		}
	}
	return l
}

// Waiting returns how many requests wait in the concurrency queue.
func (l *Limiter) Waiting() int {
	if l.leases != nil {
		return l.gate.Waiting() + l.leases.Waiting()
	}
	return l.gate.Waiting()
}

// acquire takes slots from the shared leases, or from the in-process gate.
func (l *Limiter) acquire(ctx context.Context, tenant string, slots []Slot) (func(), error) {
	if l.leases != nil {
		return l.leases.Acquire(ctx, tenant, slots, l.cfg.Queue.Size, l.cfg.Queue.MaxWait)
	}
	return l.gate.Acquire(ctx, tenant, slots)
}

// ValidTenant reports whether a tenant name taken from a header is
// acceptable: 1..128 bytes of letters, digits and . _ - : @.
func ValidTenant(s string) bool {
	if s == "" || len(s) > maxTenantLen {
		return false
	}
	for _, r := range s {
		ok := r == '.' || r == '_' || r == '-' || r == ':' || r == '@' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// Reservation is what one admitted request holds. Finish must be called
// exactly once when the request ends; later calls do nothing.
type Reservation struct {
	l        *Limiter
	charges  []Charge
	kinds    []kind
	reserved Usage
	release  func()
	slots    int
	once     sync.Once
}

// Admit reserves req's rates and concurrency slots atomically per store:
// rate limits answer at once (ErrRateLimited), concurrency waits in the
// fair queue (ErrTenantBusy, ErrBackendBusy). Headers are returned in both
// cases. Errors are *DeniedError or ctx's error.
func (l *Limiter) Admit(ctx context.Context, req Request) (*Reservation, Headers, error) {
	// A negative estimate would be a free (or refunding) charge.
	req.Input, req.Output = max(req.Input, 0), max(req.Output, 0)
	charges, kinds, slots := l.plan(req)
	nslots := len(slots)
	slots = req.Hold.without(slots)
	var h Headers
	if len(charges) > 0 {
		d, err := l.store.Reserve(ctx, charges)
		switch {
		case err != nil && l.failOpen():
			charges, kinds = nil, nil
		case err != nil:
			l.metrics.denied(ErrStoreUnavailable)
			return nil, h, &DeniedError{Kind: ErrStoreUnavailable, RetryAfter: time.Second}
		default:
			h = headersFor(kinds, d.States)
			if !d.Allowed {
				l.metrics.denied(ErrRateLimited)
				return nil, h, &DeniedError{Kind: ErrRateLimited, RetryAfter: d.RetryAfter, What: deniedWhat(kinds, d.States, charges)}
			}
		}
	}
	release, err := l.acquire(ctx, req.Tenant, slots)
	if err != nil {
		l.refund(charges)
		if de, ok := err.(*DeniedError); ok {
			l.metrics.denied(de.Kind)
		}
		return nil, h, err
	}
	release = req.Hold.join(release)
	l.metrics.reservations.Inc()
	return &Reservation{l: l, charges: charges, kinds: kinds, reserved: Usage{Input: req.Input, Output: req.Output}, release: release, slots: nslots}, h, nil
}

// Finish reconciles the reservation with what the request used (refunding
// or charging the difference in each token bucket) and frees its slots.
// Only the first call counts.
func (r *Reservation) Finish(used Usage) {
	// A backend may report anything: negative usage would panic the
	// metrics and refund what was never reserved.
	used.Input, used.Output = max(used.Input, 0), max(used.Output, 0)
	r.once.Do(func() {
		r.release()
		r.l.metrics.reservations.Dec()
		r.l.metrics.reconciledIn.Add(float64(used.Input))
		r.l.metrics.reconciledOut.Add(float64(used.Output))
		if len(r.charges) == 0 {
			return
		}
		// Both sides are in [0, MaxInt64], so no difference overflows.
		adj := make([]Charge, 0, len(r.charges))
		for i, c := range r.charges {
			var d int64
			switch r.kinds[i] {
			case kindInput:
				d = used.Input - r.reserved.Input
			case kindOutput:
				d = used.Output - r.reserved.Output
			case kindTotal:
				d = addSat(used.Input, used.Output) - addSat(r.reserved.Input, r.reserved.Output)
			}
			if d != 0 {
				c.Cost = d
				adj = append(adj, c)
			}
		}
		if len(adj) == 0 {
			return
		}
		r.l.adjust(adj)
	})
}

// Holds reports whether the reservation holds anything to give back:
// rate charges or concurrency slots.
func (r *Reservation) Holds() bool { return len(r.charges) > 0 || r.slots > 0 }

// NeedsUsage reports whether real usage changes what is charged: a token
// bucket was reserved.
func (r *Reservation) NeedsUsage() bool {
	for _, k := range r.kinds {
		if k != kindRequests && k != kindBytes {
			return true
		}
	}
	return false
}

// HoldsSlots reports whether the reservation holds concurrency slots.
func (r *Reservation) HoldsSlots() bool { return r.slots > 0 }

// Reserved is what the reservation holds against the token buckets.
func (r *Reservation) Reserved() Usage { return r.reserved }

func (l *Limiter) refund(charges []Charge) {
	if len(charges) == 0 {
		return
	}
	back := make([]Charge, len(charges))
	for i, c := range charges {
		c.Cost = -c.Cost
		back[i] = c
	}
	l.adjust(back)
}

// adjust applies charges to the store within adjustTimeout. The in-memory
// store never blocks and ignores its context, so it gets no deadline: no
// timer per finished request. A store that fails logs and counts it itself.
func (l *Limiter) adjust(charges []Charge) {
	if _, mem := l.store.(*MemoryStore); mem {
		_ = l.store.Adjust(context.Background(), charges)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), adjustTimeout)
	defer cancel()
	_ = l.store.Adjust(ctx, charges)
}

func (l *Limiter) failOpen() bool { return l.cfg.Redis != nil && l.cfg.Redis.FailOpen }

// tenant returns the limits that apply to tenant, or nil.
func (l *Limiter) tenant(name string) *config.TenantLimits {
	if t := l.tenants[name]; t != nil {
		return t
	}
	return l.tenants[config.AnyTenant]
}

// slotLimit is s's cap under l's config (0: none).
func (l *Limiter) slotLimit(s Slot) int {
	if s.Backend {
		return l.backends[s.owner]
	}
	t := l.tenant(s.owner)
	if t == nil {
		return 0
	}
	if s.service != "" {
		return serviceSlotLimit(t, s.service)
	}
	if s.model == "" {
		return t.ConcurrentStreams
	}
	for _, m := range t.Models {
		if m.Name == s.model {
			return m.ConcurrentStreams
		}
	}
	return 0
}

// plan lists the rate charges and slots req needs. Keys carry the tenant
// in braces so that a Redis Cluster keeps one tenant's keys in one slot.
func (l *Limiter) plan(req Request) ([]Charge, []kind, []Slot) {
	var charges []Charge
	var kinds []kind
	var slots []Slot
	t := l.tenant(req.Tenant)
	if t != nil {
		// Room for the tenant's four rates, the common case, at once.
		charges, kinds = make([]Charge, 0, 4), make([]kind, 0, 4)
	}
	base := "{" + req.Tenant + "}"
	add := func(prefix, model string, r config.Rates) {
		for _, x := range []struct {
			k     kind
			name  string
			limit int64
			cost  int64
		}{
			{kindRequests, ":rpm", r.RequestsPerMinute, 1},
			{kindInput, ":itpm", r.InputTokensPerMinute, req.Input},
			{kindOutput, ":otpm", r.OutputTokensPerMinute, req.Output},
			{kindTotal, ":tpm", r.TotalTokensPerMinute, addSat(req.Input, req.Output)},
		} {
			if x.limit > 0 {
				charges = append(charges, Charge{Key: prefix + x.name, Rule: Rule{Limit: x.limit, Period: time.Minute}, Cost: x.cost})
				kinds = append(kinds, x.k)
			}
		}
		if r.ConcurrentStreams > 0 {
			slots = append(slots, Slot{Key: "c:" + prefix, Limit: r.ConcurrentStreams, owner: req.Tenant, model: model})
		}
	}
	if req.Service != "" {
		charges, kinds, slots = l.planService(req, t)
	} else if t != nil {
		add(base, "", t.Rates)
		for _, m := range t.Models {
			if m.Name == req.Model {
				add(base+":m:"+m.Name, m.Name, m.Rates)
			}
		}
	}
	if n := l.backends[req.Backend]; n > 0 {
		slots = append(slots, Slot{Key: "b:" + req.Backend, Limit: n, Backend: true, owner: req.Backend})
	}
	return charges, kinds, slots
}

// addSat returns a+b for non-negative a and b, saturating at math.MaxInt64.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// headersFor reports, per kind of header, the bucket with least remaining.
func headersFor(kinds []kind, states []State) Headers {
	var h Headers
	for i, k := range kinds {
		s := &states[i]
		dst := &h.Tokens
		switch k {
		case kindRequests:
			dst = &h.Requests
		case kindBytes:
			continue
		}
		if *dst == nil || s.Remaining < (*dst).Remaining {
			*dst = s
		}
	}
	return h
}

func deniedWhat(kinds []kind, states []State, charges []Charge) string {
	names := [...]string{"requests per minute", "input tokens per minute", "output tokens per minute", "total tokens per minute", "request bytes per minute"}
	var parts []string
	for i, k := range kinds {
		if charges[i].Cost > states[i].Remaining {
			parts = append(parts, names[k])
		}
	}
	return strings.Join(parts, ", ")
}

// Metrics are the limiter's Prometheus collectors (a shared store's
// health has its own: StoreMetrics). A nil *Metrics records
// nothing but the outstanding count, which Finish still needs.
type Metrics struct {
	reservations prometheus.Gauge
	holds        prometheus.Gauge
	deniedTotal  *prometheus.CounterVec
	reconciled   *prometheus.CounterVec
	// reconciledIn and reconciledOut are reconciled's two series, looked
	// up once instead of by label on every Finish.
	reconciledIn, reconciledOut prometheus.Counter
}

// NewMetrics registers the limiter's metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reservations: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamgate_reservations_outstanding",
			Help: "Admitted requests whose reservation has not been reconciled and released yet.",
		}),
		holds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamgate_ratelimit_holds_outstanding",
			Help: "Requests holding their tenant's concurrency slot since their headers, not yet admitted or ended.",
		}),
		deniedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamgate_ratelimit_denied_total",
			Help: "Requests refused by the limiter, by reason.",
		}, []string{"reason"}),
		reconciled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamgate_tokens_reconciled_total",
			Help: "Tokens charged to tenants after reconciliation, by direction (input, output).",
		}, []string{"direction"}),
	}
	// Both directions exist from the start: dashboards (and tests) see 0,
	// not "no data".
	m.reconciledIn = m.reconciled.WithLabelValues("input")
	m.reconciledOut = m.reconciled.WithLabelValues("output")
	if reg != nil {
		reg.MustRegister(m.reservations, m.holds, m.deniedTotal, m.reconciled)
	}
	return m
}

func (m *Metrics) denied(kind error) {
	reason := "rate_limited"
	switch kind {
	case ErrTenantBusy:
		reason = "tenant_busy"
	case ErrBackendBusy:
		reason = "backend_busy"
	case ErrStoreUnavailable:
		reason = "store_unavailable"
	}
	m.deniedTotal.WithLabelValues(reason).Inc()
}

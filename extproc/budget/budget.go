package budget

import (
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/streamgate/streamgate/config"
)

// settleTimeout bounds the store call that settles a finished request:
// it runs after the client's context has ended.
const settleTimeout = time.Second

// MaxCost bounds one request's cost in micro-units: Redis scripts count in
// doubles, exact to 2^53.
const MaxCost = int64(1) << 50

// Budgets are the budgets of one config generation over a Store shared
// with the next generation (Reconfigured). Immutable; safe for concurrent
// use. A nil *Budgets applies to nobody.
type Budgets struct {
	tenants  map[string]*tenantRules
	loc      *time.Location
	settings config.BudgetSettings
	failOpen bool
	store    Store
	shared   *shared
}

// shared is what outlives a config: metrics, the log, the clock, the
// tenants recorded as seen.
type shared struct {
	metrics *Metrics
	log     *slog.Logger
	now     func() time.Time
	mu      sync.Mutex
	seen    map[string]int64 // tenant -> hour (unix/3600) last recorded
}

// tenantRules are one tenant entry's budgets ("*": every other tenant's).
type tenantRules struct {
	own  []rule
	keys map[string][]rule
}

// rule is one configured budget: its window and amounts in micro-units.
type rule struct {
	window config.BudgetWindow
	// name is window.String(), computed once.
	name  string
	limit int64
	warn  int64
	// scope names the counter: "t" (tenant) or "k:<key name>".
	scope string
}

// Options are what New needs besides the config.
type Options struct {
	// Store keeps counters (nil: a MemoryStore).
	Store Store
	// Metrics may be nil (unregistered).
	Metrics *Metrics
	// Log defaults to slog.Default(); Now to time.Now.
	Log *slog.Logger
	Now func() time.Time
}

// New returns the budgets of cfg, or nil when cfg sets none.
func New(cfg *config.Limits, o Options) *Budgets {
	if !cfg.HasBudgets() {
		return nil
	}
	if o.Store == nil {
		o.Store = NewMemoryStore(o.Now)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if rs, ok := o.Store.(*RedisStore); ok {
		rs.onDrop = func(n int) { o.Metrics.lost.Add(float64(n)) }
	}
	return build(cfg, o.Store, &shared{metrics: o.Metrics, log: o.Log, now: o.Now, seen: map[string]int64{}})
}

// Reconfigured returns the budgets of cfg on b's store and state (nil
// when cfg sets none). b may be nil: a config that adds budgets needs
// Options, so a caller keeps them (extproc.Limits does).
func (b *Budgets) Reconfigured(cfg *config.Limits) *Budgets {
	if b == nil || !cfg.HasBudgets() {
		return nil
	}
	return build(cfg, b.store, b.shared)
}

func build(cfg *config.Limits, store Store, sh *shared) *Budgets {
	b := &Budgets{tenants: map[string]*tenantRules{}, loc: cfg.Budget.Location(), settings: cfg.Budget,
		failOpen: cfg.Redis != nil && cfg.Redis.FailOpen, store: store, shared: sh}
	for _, t := range cfg.Tenants {
		// A listed tenant without budgets has none: "*" covers only
		// tenants not listed, as for rates.
		tr := &tenantRules{own: rules(t.Budgets, "t", cfg.Budget.WarnPercent)}
		for _, k := range t.APIKeys {
			if tr.keys == nil {
				tr.keys = map[string][]rule{}
			}
			tr.keys[k.Name] = rules(k.Budgets, "k:"+k.Name, cfg.Budget.WarnPercent)
		}
		b.tenants[t.Name] = tr
	}
	return b
}

func rules(bs []config.Budget, scope string, warnPct float64) []rule {
	out := make([]rule, 0, len(bs))
	for _, c := range bs {
		w, err := config.ParseBudgetWindow(c.Window)
		if err != nil {
			continue // validated: cannot happen
		}
		limit := Micro(c.Amount)
		out = append(out, rule{window: w, name: w.String(), limit: limit, warn: int64(math.Ceil(float64(limit) * warnPct / 100)), scope: scope})
	}
	return out
}

// Micro converts an amount of currency to micro-units, rounded to the
// nearest and bounded by [0, MaxCost].
func Micro(amount float64) int64 {
	switch {
	case !(amount > 0):
		return 0
	case amount*1e6 >= float64(MaxCost):
		return MaxCost
	}
	return int64(math.Round(amount * 1e6))
}

// Amount converts micro-units back to the currency.
func Amount(micro int64) float64 { return float64(micro) / 1e6 }

// rulesFor returns the tenant's entry (or "*"'s).
func (b *Budgets) rulesFor(tenant string) *tenantRules {
	if b == nil {
		return nil
	}
	if t := b.tenants[tenant]; t != nil {
		return t
	}
	return b.tenants[config.AnyTenant]
}

// Applies reports whether a request of tenant with API key key (""
// for none) has a budget. Costs two map lookups at most, no allocation.
func (b *Budgets) Applies(tenant, key string) bool {
	t := b.rulesFor(tenant)
	return t != nil && (len(t.own) > 0 || len(t.keys[key]) > 0)
}

// Request is what a reservation needs.
type Request struct {
	Tenant, Key string
	// Cost is the worst case in micro-units (MaxCost at most).
	Cost int64
}

// Window is one budget window of a reservation: what the response
// headers, the usage event and the usage API report.
type Window struct {
	// Scope is "tenant" or "key"; Key the API key's name for "key".
	Scope, Key string
	// Window is day, month or the rolling window's length.
	Window     string
	Start, End time.Time
	// Limit and Spent (reservations in flight included) in micro-units.
	Limit, Spent int64
	// Reset is when the window frees room (calendar: its end).
	Reset time.Duration
	// Warned: this request crossed the window's warning first.
	Warned bool
}

// Remaining is what is left of the window, never negative.
func (w Window) Remaining() int64 { return max(w.Limit-w.Spent, 0) }

// counters lists the counters, windows and window spans of a request at
// now.
func (b *Budgets) counters(t *tenantRules, tenant, key string, now time.Time) ([]Counter, []Window, []span) {
	rs := t.own
	if kr := t.keys[key]; len(kr) > 0 {
		rs = append(append(make([]rule, 0, len(rs)+len(kr)), rs...), kr...)
	}
	cs := make([]Counter, len(rs))
	ws := make([]Window, len(rs))
	sps := make([]span, len(rs))
	for i, r := range rs {
		sp := spanAt(r.window, now, b.loc)
		c := Counter{Limit: r.limit, Warn: r.warn}
		if sp.rolling() {
			c.Key = "{" + tenant + "}:b:" + r.scope + ":" + r.name
			c.TTL, c.Slice = sp.ttl(), sp.slice
		} else {
			c.Key = "{" + tenant + "}:b:" + r.scope + ":" + r.name + ":" + sp.stamp
			c.ExpireAt = sp.expireAt()
		}
		cs[i], sps[i] = c, sp
		w := Window{Scope: "tenant", Window: r.name, Start: sp.start, End: sp.end, Limit: r.limit}
		if k, ok := strings.CutPrefix(r.scope, "k:"); ok {
			w.Scope, w.Key = "key", k
		}
		ws[i] = w
	}
	return cs, ws, sps
}

package budget

import (
	"context"
	"sync"
	"time"

	"github.com/streamgate/streamgate/extproc/ratelimit"
)

// Reservation is one admitted request's hold on its budgets. Settle must
// be called exactly once when the request ends; later calls do nothing.
// A nil *Reservation settles nothing.
type Reservation struct {
	b        *Budgets
	tenant   string
	key      string
	counters []Counter
	windows  []Window
	reserved int64
	// unreserved: the store was down and fail_open admitted the request;
	// its cost is still recorded at Settle if the store is back.
	unreserved bool
	// refused: the budget had no room; nothing is held.
	refused bool
	at      time.Time
	once    sync.Once
}

// Reserve charges req's worst-case cost to every budget window of its
// tenant and key, or to none. It returns nil, nil when no budget applies.
// A refusal is a *ratelimit.DeniedError wrapping ErrExceeded (RetryAfter:
// when the tightest full window frees room) or, with the store down and
// fail_open off, ratelimit.ErrStoreUnavailable. A request refused for
// ErrExceeded still gets its Reservation, which holds nothing (Settle does
// nothing) and reports the windows for the refusal's headers.
func (b *Budgets) Reserve(ctx context.Context, req Request) (*Reservation, error) {
	t := b.rulesFor(req.Tenant)
	if t == nil || (len(t.own) == 0 && len(t.keys[req.Key]) == 0) {
		return nil, nil
	}
	cost := min(max(req.Cost, 0), MaxCost)
	now := b.shared.now()
	cs, ws, spans := b.counters(t, req.Tenant, req.Key, now)
	r := &Reservation{b: b, tenant: req.Tenant, key: req.Key, counters: cs, windows: ws, reserved: cost, at: now}
	d, err := b.store.Reserve(ctx, cs, cost)
	if err != nil {
		if b.failOpen {
			b.shared.metrics.denied.WithLabelValues("fail_open").Inc()
			r.reserved, r.unreserved = 0, true
			return r, nil
		}
		b.shared.metrics.denied.WithLabelValues("store_unavailable").Inc()
		return nil, &ratelimit.DeniedError{Kind: ratelimit.ErrStoreUnavailable, RetryAfter: time.Second}
	}
	for i := range ws {
		ws[i].Spent = d.States[i].Spent
		ws[i].Reset = spans[i].resetAfter(now, d.States[i].Oldest)
		ws[i].Warned = d.States[i].Warned
	}
	if !d.Allowed {
		b.shared.metrics.denied.WithLabelValues("exceeded").Inc()
		w := r.refusing()
		r.refused = true
		return r, &ratelimit.DeniedError{Kind: ErrExceeded, RetryAfter: w.Reset, What: w.describe(req.Tenant)}
	}
	r.warn()
	return r, nil
}

// refusing returns the window that refused: of those without room for
// the cost, the one that frees room last.
func (r *Reservation) refusing() Window {
	var out Window
	for _, w := range r.windows {
		if w.Spent+r.reserved > w.Limit && w.Reset >= out.Reset {
			out = w
		}
	}
	return out
}

// describe names the window for a client: "day budget of tenant acme".
func (w Window) describe(tenant string) string {
	name := w.Window
	if w.Window != "day" && w.Window != "month" {
		name = "rolling " + w.Window
	}
	if w.Scope == "key" {
		return name + " budget of API key " + w.Key
	}
	return name + " budget of tenant " + tenant
}

// Tightest returns the window with the least remaining (the response
// headers' budget), false for a reservation without windows.
func (r *Reservation) Tightest() (Window, bool) {
	if r == nil || r.unreserved || len(r.windows) == 0 {
		return Window{}, false
	}
	best := r.windows[0]
	for _, w := range r.windows[1:] {
		if w.Remaining() < best.Remaining() {
			best = w
		}
	}
	return best, true
}

// Windows are the reservation's windows as of its last store call.
// Callers must not modify them.
func (r *Reservation) Windows() []Window {
	if r == nil {
		return nil
	}
	return r.windows
}

// Reserved is the worst-case cost held, in micro-units.
func (r *Reservation) Reserved() int64 { return r.reserved }

// Settle replaces the reservation with what the request cost (sp.Cost,
// micro-units), records it per model and in the usage series, and
// frees nothing else. Only the first call counts.
func (r *Reservation) Settle(sp Spend) {
	if r == nil || r.refused {
		return
	}
	r.once.Do(func() { r.settle(sp) })
}

// Cancel gives the whole reservation back, recording no spend: the
// request was refused after it reserved. Only the first Settle or Cancel
// counts.
func (r *Reservation) Cancel() {
	if r == nil || r.refused {
		return
	}
	r.once.Do(func() {
		if r.unreserved {
			return
		}
		st := Settlement{Counters: r.counters, Delta: -r.reserved, Refund: true}
		ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
		defer cancel()
		_, _ = r.b.store.Settle(ctx, st)
	})
}

func (r *Reservation) settle(sp Spend) {
	b := r.b
	sp.Cost = min(max(sp.Cost, 0), MaxCost)
	sp.Key = r.key
	st := Settlement{Counters: r.counters, Delta: sp.Cost - r.reserved, Spend: sp, Series: b.seriesAt(r.tenant, r.at)}
	if r.unreserved {
		// Never charged: the whole cost goes on (when the store is back).
		st.Delta = sp.Cost
	}
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	warned, err := b.store.Settle(ctx, st)
	b.shared.metrics.spent.Add(Amount(sp.Cost))
	if err != nil {
		return // the store counted and logged the outage
	}
	for i := range min(len(warned), len(r.windows)) {
		if warned[i] && !r.windows[i].Warned {
			r.windows[i].Warned = true
			r.warnOne(&r.windows[i])
		}
	}
	b.seen(ctx, r.tenant, r.at)
}

// warn logs each window this request crossed the warning of first: once
// per window across every replica on the store.
func (r *Reservation) warn() {
	for i := range r.windows {
		if r.windows[i].Warned {
			r.warnOne(&r.windows[i])
		}
	}
}

// warnOne logs and counts w's warning.
func (r *Reservation) warnOne(w *Window) {
	r.b.shared.metrics.warnings.Inc()
	r.b.shared.log.Warn("budget warning: spend crossed the warning share of a budget", "tenant", r.tenant, "scope", w.Scope,
		"key", w.Key, "window", w.Window, "window_start", w.Start, "limit", Amount(w.Limit), "spent", Amount(w.Spent),
		"warn_percent", r.b.settings.WarnPercent)
}

// seriesAt names the hourly (UTC) and daily (budget zone) series buckets
// of a request admitted at t.
func (b *Budgets) seriesAt(tenant string, t time.Time) []SeriesBucket {
	base := "{" + tenant + "}:bs:"
	day := spanAt(dayWindow, t, b.loc)
	return []SeriesBucket{
		{Key: base + "h:" + hourStamp(t), ExpireAt: t.Truncate(time.Hour).Add(time.Hour + b.settings.HourlyRetention)},
		{Key: base + "d:" + day.stamp, ExpireAt: day.end.Add(b.settings.DailyRetention)},
	}
}

// seen records tenant as spending in the store at most once an hour per
// process: the usage API lists tenants "*" covers from it.
func (b *Budgets) seen(ctx context.Context, tenant string, at time.Time) {
	hour := at.Unix() / 3600
	sh := b.shared
	sh.mu.Lock()
	last, ok := sh.seen[tenant]
	if ok && last == hour {
		sh.mu.Unlock()
		return
	}
	sh.seen[tenant] = hour
	if len(sh.seen) > 100000 {
		clear(sh.seen) // bounded: the store keeps the list
	}
	sh.mu.Unlock()
	if err := b.store.Seen(ctx, tenant, at); err != nil {
		sh.mu.Lock()
		delete(sh.seen, tenant)
		sh.mu.Unlock()
	}
}

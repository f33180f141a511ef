package budget

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/streamgate/streamgate/config"
)

// MaxSeriesPoints bounds the buckets one series query reads.
const MaxSeriesPoints = 1000

// TenantUsage is a tenant's budgets in their current windows.
type TenantUsage struct {
	Tenant  string        `json:"tenant"`
	Windows []WindowUsage `json:"windows"`
}

// WindowUsage is one budget window: limit, spend and what is left, in
// the currency, and the settled spend per model (calendar windows).
type WindowUsage struct {
	Scope     string       `json:"scope"`
	Key       string       `json:"key,omitempty"`
	Window    string       `json:"window"`
	Start     time.Time    `json:"start"`
	End       time.Time    `json:"end"`
	Limit     float64      `json:"limit"`
	Spent     float64      `json:"spent"`
	Remaining float64      `json:"remaining"`
	Models    []ModelUsage `json:"models,omitempty"`
}

// ModelUsage is settled spend of one model (and, in series, API key).
type ModelUsage struct {
	Key          string  `json:"key,omitempty"`
	Model        string  `json:"model"`
	Cost         float64 `json:"cost"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	Requests     int64   `json:"requests"`
}

// Point is one bucket of a usage series.
type Point struct {
	Start  time.Time    `json:"start"`
	Models []ModelUsage `json:"models"`
}

// Tenants lists the tenants with budgets: those the config names and
// those "*" covers that spent within the daily retention, sorted.
func (b *Budgets) Tenants(ctx context.Context) ([]string, error) {
	set := map[string]bool{}
	for t, r := range b.tenants {
		if t != config.AnyTenant && (len(r.own) > 0 || len(r.keys) > 0) {
			set[t] = true
		}
	}
	if _, any := b.tenants[config.AnyTenant]; any {
		seen, err := b.store.Tenants(ctx, b.shared.now().Add(-b.settings.DailyRetention))
		if err != nil {
			return nil, err
		}
		for _, t := range seen {
			set[t] = true
		}
	}
	out := make([]string, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	sort.Strings(out)
	return out, nil
}

// Usage reports tenant's budget windows as of now (every key budget of
// the tenant included), in one store read.
func (b *Budgets) Usage(ctx context.Context, tenant string) (TenantUsage, error) {
	out := TenantUsage{Tenant: tenant, Windows: []WindowUsage{}}
	t := b.rulesFor(tenant)
	if t == nil {
		return out, nil
	}
	now := b.shared.now()
	cs, ws, _ := b.counters(t, tenant, "", now)
	keys := make([]string, 0, len(t.keys))
	for k := range t.keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kc, kw, _ := b.counters(&tenantRules{keys: t.keys}, tenant, k, now)
		cs, ws = append(cs, kc...), append(ws, kw...)
	}
	us, err := b.store.Read(ctx, cs)
	if err != nil {
		return out, err
	}
	for i, w := range ws {
		w.Spent = us[i].Spent
		wu := WindowUsage{Scope: w.Scope, Key: w.Key, Window: w.Window, Start: w.Start, End: w.End,
			Limit: Amount(w.Limit), Spent: Amount(w.Spent), Remaining: Amount(w.Remaining())}
		for _, m := range us[i].Models {
			wu.Models = append(wu.Models, modelUsage(m))
		}
		out.Windows = append(out.Windows, wu)
	}
	return out, nil
}

func modelUsage(u Usage) ModelUsage {
	return ModelUsage{Key: u.Key, Model: u.Model, Cost: Amount(u.Cost), InputTokens: u.Input, OutputTokens: u.Output, Requests: u.Requests}
}

// Steps of a usage series.
const (
	StepHour = "hour"
	StepDay  = "day"
)

// Series reports tenant's usage per hour (UTC hours) or per day (days of
// the budget time zone) for the buckets starting in [from, to), at most
// MaxSeriesPoints; buckets without spend are left out.
func (b *Budgets) Series(ctx context.Context, tenant, step string, from, to time.Time) ([]Point, error) {
	var starts []time.Time
	var keys []string
	base := "{" + tenant + "}:bs:"
	switch step {
	case StepHour:
		for t := from.UTC().Truncate(time.Hour); t.Before(to) && len(keys) < MaxSeriesPoints; t = t.Add(time.Hour) {
			starts, keys = append(starts, t), append(keys, base+"h:"+hourStamp(t))
		}
	case StepDay:
		for sp := spanAt(dayWindow, from, b.loc); sp.start.Before(to) && len(keys) < MaxSeriesPoints; sp = spanAt(dayWindow, sp.end, b.loc) {
			starts, keys = append(starts, sp.start), append(keys, base+"d:"+sp.stamp)
		}
	default:
		return nil, fmt.Errorf("cannot read usage series: step %q is not hour or day", step)
	}
	us, err := b.store.Series(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := []Point{}
	for i, u := range us {
		if len(u) == 0 {
			continue
		}
		p := Point{Start: starts[i]}
		for _, m := range u {
			p.Models = append(p.Models, modelUsage(m))
		}
		out = append(out, p)
	}
	return out, nil
}

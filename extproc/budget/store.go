package budget

import (
	"context"
	"errors"
	"time"
)

// ErrExceeded: a budget has no room for the request's worst-case cost
// (HTTP 429 budget_exceeded). A denial wraps it in a
// *ratelimit.DeniedError whose RetryAfter is the window's reset.
var ErrExceeded = errors.New("budget exceeded")

// Counter is one budget window's counter as a store sees it. Amounts are
// micro-units (millionths) of the currency.
type Counter struct {
	// Key is the counter's key without the store's prefix:
	// "{tenant}:b:<scope>:<window>[:<stamp>]"; the tenant in braces keeps
	// a request's counters in one Redis Cluster slot.
	Key string
	// Limit is the budget; Warn the spend whose crossing warns (0: never).
	Limit, Warn int64
	// ExpireAt drops a calendar counter (its window's end plus a grace);
	// zero for rolling counters, which live TTL past their last write.
	ExpireAt time.Time
	TTL      time.Duration
	// Slice is a rolling counter's current slice index (0: calendar).
	Slice int64
}

// rolling reports whether c is a rolling window's counter.
func (c Counter) rolling() bool { return c.TTL > 0 }

// State is a counter as Reserve or Read left it.
type State struct {
	// Spent includes the reservations of requests still running.
	Spent int64
	// Oldest is a rolling counter's oldest slice holding spend, -1 if none.
	Oldest int64
	// Warned: this call crossed the counter's Warn first in its window.
	Warned bool
}

// Decision is Reserve's answer: either every counter was charged or none.
type Decision struct {
	Allowed bool
	States  []State
}

// Spend is what one finished request cost, recorded per model with its
// settlement.
type Spend struct {
	// Key is the API key's name ("" for none), Model the public model.
	Key, Model string
	// Cost in micro-units, and the tokens the cost came from.
	Cost, Input, Output int64
}

// Settlement corrects one reservation with what the request cost.
type Settlement struct {
	// Counters are the reservation's, with the slices it was charged in.
	Counters []Counter
	// Delta is actual minus reserved cost (negative: a refund).
	Delta int64
	// Spend is recorded in each calendar counter (per model) and in the
	// tenant's hourly and daily series (per key and model).
	Spend Spend
	// Series are the tenant's series buckets this request counts in.
	Series []SeriesBucket
	// Refund: the request was refused after its reservation; only Delta
	// applies, nothing is recorded per model or in the series.
	Refund bool
}

// SeriesBucket is one hour's or day's usage hash of a tenant.
type SeriesBucket struct {
	Key      string
	ExpireAt time.Time
}

// Usage is one model's (and key's) spend in a window or series bucket.
type Usage struct {
	Key, Model          string
	Cost, Input, Output int64
	Requests            int64
}

// CounterUsage is a counter's state for the usage API: its spend and, for
// calendar windows, the settled spend per model.
type CounterUsage struct {
	Spent  int64
	Oldest int64
	Models []Usage
}

// Store keeps budget counters. Implementations are safe for concurrent use.
type Store interface {
	// Reserve charges cost to every counter if each has room for it
	// (spent + cost <= limit), else to none.
	Reserve(ctx context.Context, counters []Counter, cost int64) (Decision, error)
	// Settle applies a settlement: Delta to each counter still kept (in
	// the slice or window it was reserved in; never below zero), the
	// spend to the per-model fields and series. It returns which counters
	// this settlement pushed past their Warn first.
	Settle(ctx context.Context, s Settlement) ([]bool, error)
	// Read returns the counters' usage (rolling ones as of slice).
	Read(ctx context.Context, counters []Counter) ([]CounterUsage, error)
	// Series returns the usage in each bucket key, in order.
	Series(ctx context.Context, keys []string) ([][]Usage, error)
	// Seen records that tenant spends (once an hour per process is
	// enough); Tenants lists those seen since.
	Seen(ctx context.Context, tenant string, at time.Time) error
	Tenants(ctx context.Context, since time.Time) ([]string, error)
}

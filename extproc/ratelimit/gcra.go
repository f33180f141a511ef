// Package ratelimit admits requests against per-tenant, per-model and
// per-backend limits: token and request rates (GCRA, in memory or in
// Redis), concurrent streams, and a bounded queue that is fair across
// tenants. Admission reserves; the caller reconciles with real usage and
// releases exactly once.
package ratelimit

import (
	"context"
	"math"
	"math/bits"
	"time"
)

// Clock tells the time. Tests inject a fake; production uses SystemClock.
type Clock interface {
	Now() time.Time
	// After is time.After on this clock.
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Rule is one rate: Limit units per Period, all of which may be spent at
// once (the burst is the whole limit).
type Rule struct {
	Limit  int64
	Period time.Duration
}

// Charge is Cost units against the bucket Key governed by Rule.
type Charge struct {
	Key  string
	Rule Rule
	Cost int64
}

// State is one bucket after a decision, in the terms of the
// x-ratelimit-* headers.
type State struct {
	Limit     int64
	Remaining int64
	// Reset is how long until the bucket is full again.
	Reset time.Duration
}

// Decision is the outcome of Reserve: either every charge was applied or
// none was.
type Decision struct {
	Allowed bool
	// RetryAfter is how long until the same charges would fit; zero when allowed.
	RetryAfter time.Duration
	// States has one entry per charge, in order.
	States []State
}

// Store holds GCRA buckets. Implementations apply a call's charges
// atomically with respect to every other call, so concurrent admissions can
// never together exceed a limit (no check-then-charge window).
type Store interface {
	// Reserve applies every charge if all fit, else none.
	Reserve(ctx context.Context, charges []Charge) (Decision, error)
	// Adjust adds each Cost (negative to refund) to its bucket without a
	// limit check. A refund never leaves a bucket fuller than full.
	Adjust(ctx context.Context, charges []Charge) error
}

// maxIncrement is the most time one charge, or a bucket, can hold: a
// century. Every tat stays within now+maxIncrement, so no sum overflows.
const maxIncrement = 100 * 365 * 24 * time.Hour

// increment is the time cost units occupy in a bucket: cost*period/limit,
// computed without overflow and capped at maxIncrement. A cost of zero or
// less occupies nothing; the limiter never charges one (plan, Finish).
func increment(cost int64, r Rule) time.Duration {
	if cost <= 0 || r.Limit <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(cost), uint64(r.Period))
	if hi >= uint64(r.Limit) {
		return maxIncrement
	}
	q, _ := bits.Div64(hi, lo, uint64(r.Limit))
	if q > uint64(maxIncrement) {
		return maxIncrement
	}
	return time.Duration(q)
}

// gcra is the bucket arithmetic shared by the stores, in nanoseconds since
// an arbitrary epoch. tat is the bucket's theoretical arrival time: the
// bucket is full when tat <= now and empty when tat >= now+period.
type gcra struct{}

// try returns the new tat if cost fits, and the wait otherwise.
func (gcra) try(tat, now int64, c Charge) (newTAT int64, ok bool, wait time.Duration) {
	tat = min(max(tat, now), now+int64(maxIncrement))
	newTAT = tat + int64(increment(c.Cost, c.Rule))
	if over := newTAT - now - int64(c.Rule.Period); over > 0 {
		return tat, false, time.Duration(over)
	}
	return newTAT, true, 0
}

// state describes a bucket whose tat is given.
func (gcra) state(tat, now int64, r Rule) State {
	used := max(tat-now, 0)
	free := int64(r.Period) - used
	rem := int64(0)
	if free > 0 {
		hi, lo := bits.Mul64(uint64(free), uint64(r.Limit))
		q, _ := bits.Div64(hi, lo, uint64(r.Period))
		rem = int64(q)
	}
	return State{Limit: r.Limit, Remaining: rem, Reset: time.Duration(used)}
}

// adjust returns tat after adding cost (or refunding -cost), never past
// now+maxIncrement, so repeated charges cannot wrap tat around.
func (gcra) adjust(tat, now int64, c Charge) int64 {
	tat = min(max(tat, now), now+int64(maxIncrement))
	switch {
	case c.Cost >= 0:
		return min(tat+int64(increment(c.Cost, c.Rule)), now+int64(maxIncrement))
	case c.Cost == math.MinInt64:
		return now
	}
	return max(tat-int64(increment(-c.Cost, c.Rule)), now)
}

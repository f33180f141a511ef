package picking

import (
	"sync/atomic"
	"time"
)

// Endpoint is one model server's live state: its last scrape (written by
// its scraper, read by every pick without a lock) and the requests
// Streamgate has sent it that have not ended.
type Endpoint struct {
	// Addr is "IP:port", as Envoy's override-host policy matches it.
	Addr string

	snap     atomic.Pointer[snapshot]
	inFlight atomic.Int64
	// prefix is the endpoint's index of recently routed prompt blocks
	// (prefix.go); nil when prefix affinity is off.
	prefix *prefixIndex
	// q is the wait queue of the endpoint's backend (wait.go), woken
	// when a request here ends or a scrape lands; nil outside a Backend.
	q atomic.Pointer[waitQueue]
}

// snapshot is one stored scrape.
type snapshot struct {
	m  Metrics
	at time.Time
}

// Store records m as scraped at at. m must not be modified afterwards.
func (e *Endpoint) Store(m Metrics, at time.Time) { e.snap.Store(&snapshot{m: m, at: at}) }

// Load returns the last scrape and when it was taken; ok is false before
// the first successful one.
func (e *Endpoint) Load() (m Metrics, at time.Time, ok bool) {
	s := e.snap.Load()
	if s == nil {
		return Metrics{}, time.Time{}, false
	}
	return s.m, s.at, true
}

// Fresh returns the last scrape if it is younger than staleAfter at now.
func (e *Endpoint) Fresh(now time.Time, staleAfter time.Duration) (Metrics, bool) {
	m, at, ok := e.Load()
	if !ok || now.Sub(at) > staleAfter {
		return Metrics{}, false
	}
	return m, true
}

// InFlight is the number of requests Streamgate has picked this endpoint
// for that have not ended.
func (e *Endpoint) InFlight() int64 { return e.inFlight.Load() }

// Start counts a request picked for e; Done ends it. Every Start has
// exactly one Done (the caller's stream end), so the count never leaks.
func (e *Endpoint) Start() { e.inFlight.Add(1) }

// Done ends a request Start counted, and lets a request waiting for room
// on the backend go if there is room now. Cost without waiters: two atomic
// loads.
func (e *Endpoint) Done() {
	e.inFlight.Add(-1)
	e.wake()
}

// wake looks for room for a waiter of e's backend (wait.go).
func (e *Endpoint) wake() {
	if q := e.q.Load(); q != nil {
		q.wake()
	}
}

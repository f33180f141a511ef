package picking

import "github.com/streamgate/streamgate/config"

// Backend is one configured backend with picking: its settings and its
// endpoints, in config order. Immutable once built; a reload builds a new
// Backend that reuses the Endpoint values of addresses it keeps, so their
// metrics, in-flight counts and prefix indexes survive the reload.
type Backend struct {
	name string
	cfg  config.Picking
	eps  []*Endpoint
	// q holds the requests waiting for room (wait.go); shared with the
	// Backends a reload builds for the same name.
	q *waitQueue
}

// NewBackend returns backend name picking among eps with cfg (defaults
// applied), with an empty wait queue of its own. eps must not belong to
// another Backend's queue.
func NewBackend(name string, cfg config.Picking, eps []*Endpoint) *Backend {
	return newBackend(name, cfg, eps, &waitQueue{})
}

// newBackend returns the Backend waiting in q, which then decides its
// saturation from it; its endpoints wake q on scrapes and request ends.
func newBackend(name string, cfg config.Picking, eps []*Endpoint, q *waitQueue) *Backend {
	b := &Backend{name: name, cfg: cfg, eps: eps, q: q}
	for _, e := range eps {
		e.q.Store(q)
	}
	q.b.Store(b)
	return b
}

// NewEndpoint returns the state of a fresh endpoint at addr for cfg.
func NewEndpoint(addr string, cfg *config.Picking) *Endpoint {
	return &Endpoint{Addr: addr, prefix: newPrefixIndex(cfg)}
}

// Name is the backend's name.
func (b *Backend) Name() string { return b.name }

// Config is the backend's picking settings.
func (b *Backend) Config() *config.Picking { return &b.cfg }

// Endpoints are the backend's endpoints in config order; callers must not
// modify the slice.
func (b *Backend) Endpoints() []*Endpoint { return b.eps }

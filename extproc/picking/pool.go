package picking

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamgate/streamgate/config"
)

// Pool holds a Backend per configured backend with picking and keeps their
// endpoints' metrics fresh. Backend is lock-free; Update and Close are
// serialized. Scraping is to be written (issue 15 item 2).
type Pool struct {
	log      *slog.Logger
	mu       sync.Mutex
	backends atomic.Pointer[map[string]*Backend]
}

// NewPool returns an empty pool registering its metrics with reg.
func NewPool(reg prometheus.Registerer, log *slog.Logger) *Pool {
	p := &Pool{log: log}
	m := map[string]*Backend{}
	p.backends.Store(&m)
	return p
}

// Update makes the pool serve cfg: backends with picking get a Backend,
// endpoints kept by address keep their state, others are dropped.
func (p *Pool) Update(cfg *config.Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.backends.Load()
	next := map[string]*Backend{}
	for i := range cfg.Backends {
		b := &cfg.Backends[i]
		if b.Picking == nil {
			continue
		}
		kept := map[string]*Endpoint{}
		if ob := old[b.Name]; ob != nil {
			for _, e := range ob.eps {
				kept[e.Addr] = e
			}
		}
		eps := make([]*Endpoint, 0, len(b.Endpoints))
		for _, ep := range b.Endpoints {
			e := kept[ep.Address]
			if e == nil {
				e = NewEndpoint(ep.Address, b.Picking)
			}
			eps = append(eps, e)
		}
		next[b.Name] = NewBackend(b.Name, *b.Picking, eps)
	}
	p.backends.Store(&next)
}

// Backend is the named backend, or nil when it does not pick.
func (p *Pool) Backend(name string) *Backend { return (*p.backends.Load())[name] }

// Close stops the pool's background work.
func (p *Pool) Close() {}

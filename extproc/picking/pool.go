package picking

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamgate/streamgate/config"
)

// Pool holds a Backend per configured backend with picking and keeps their
// endpoints' metrics fresh: Update starts one scraper goroutine per
// endpoint of a backend whose dialect is not "none", and stops those of
// endpoints a reload drops; Close stops them all. Backend and Observe are
// lock-free and safe for concurrent use; Update and Close are serialized.
type Pool struct {
	log     *slog.Logger
	metrics *poolMetrics
	client  *http.Client
	// now is the clock of snapshots and of the scrape-age metric.
	now func() time.Time

	mu       sync.Mutex
	ctx      context.Context // parent of every scraper; canceled by Close
	cancel   context.CancelFunc
	scrapers map[scrapeKey]*scraper
	closed   bool

	state atomic.Pointer[map[string]*poolBackend]
}

// poolBackend is a Backend and its endpoints' pick counters, swapped whole
// on reload.
type poolBackend struct {
	b     *Backend
	picks map[string]*pickCounters
}

// queue is the backend's wait queue, kept across reloads.
func (pb *poolBackend) queue() *waitQueue {
	if pb == nil {
		return nil
	}
	return pb.b.q
}

// scrapeKey names one endpoint of one backend.
type scrapeKey struct{ backend, addr string }

// NewPool returns an empty pool registering its metrics with reg (nil:
// unregistered) and logging to log (nil: discarded). Call it once per
// registry; reloads go through Update.
func NewPool(reg prometheus.Registerer, log *slog.Logger) *Pool {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool{
		log:      log,
		client:   newScrapeClient(),
		now:      time.Now,
		ctx:      ctx,
		cancel:   cancel,
		scrapers: map[scrapeKey]*scraper{},
	}
	p.metrics = newPoolMetrics(p, reg)
	m := map[string]*poolBackend{}
	p.state.Store(&m)
	return p
}

// Update makes the pool serve cfg: backends with picking get a Backend,
// endpoints kept by address keep their state (metrics, in-flight count,
// prefix index) and their scraper, unless the backend's scrape settings
// changed, in which case the scraper restarts on the same state. Scrapers
// of dropped endpoints stop before Update returns; new ones start with a
// random delay under one interval so scrapes do not align. An address
// listed twice in a backend is one endpoint. After Close, Update only
// swaps the backends and starts nothing.
func (p *Pool) Update(cfg *config.Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.state.Load()
	next := map[string]*poolBackend{}
	want := map[scrapeKey]*scraper{}
	for i := range cfg.Backends {
		b := &cfg.Backends[i]
		if b.Picking == nil {
			continue
		}
		pb := p.buildBackend(b, old[b.Name])
		next[b.Name] = pb
		d, scrape := newDialect(b.Picking)
		if !scrape {
			continue
		}
		spec := newScrapeSpec(b.Picking)
		for _, e := range pb.b.eps {
			k := scrapeKey{b.Name, e.Addr}
			if s := p.scrapers[k]; s != nil && s.ep == e && s.spec == spec {
				want[k] = s
				continue
			}
			want[k] = p.newScraper(k, e, spec, d)
		}
	}
	p.state.Store(&next)
	var stopping []*scraper
	for k, s := range p.scrapers {
		if want[k] != s {
			s.cancel()
			stopping = append(stopping, s)
		}
	}
	for _, s := range stopping {
		<-s.done
	}
	for k, s := range want {
		if p.scrapers[k] != s && !p.closed {
			s.start(p.ctx)
		}
	}
	p.scrapers = want
	if p.closed {
		p.scrapers = map[scrapeKey]*scraper{}
	}
	p.forgetDropped(old, next)
}

// buildBackend builds backend b's Backend, reusing the endpoints and pick
// counters of old (nil: none) for the addresses it keeps.
func (p *Pool) buildBackend(b *config.Backend, old *poolBackend) *poolBackend {
	kept := map[string]*Endpoint{}
	if old != nil {
		for _, e := range old.b.eps {
			kept[e.Addr] = e
		}
	}
	pb := &poolBackend{picks: map[string]*pickCounters{}}
	eps := make([]*Endpoint, 0, len(b.Endpoints))
	for _, ep := range b.Endpoints {
		if pb.picks[ep.Address] != nil {
			continue
		}
		e := kept[ep.Address]
		if e == nil {
			e = NewEndpoint(ep.Address, b.Picking)
		}
		eps = append(eps, e)
		if old != nil && old.picks[ep.Address] != nil {
			pb.picks[ep.Address] = old.picks[ep.Address]
		} else {
			pb.picks[ep.Address] = p.metrics.pickCounters(b.Name, ep.Address)
		}
	}
	q := old.queue()
	if q == nil {
		q = &waitQueue{sheds: p.metrics.shedCounters(b.Name), now: p.now}
	}
	pb.b = newBackend(b.Name, *b.Picking, eps, q)
	return pb
}

// forgetDropped deletes the metric series of endpoints in old but not in
// next.
func (p *Pool) forgetDropped(old, next map[string]*poolBackend) {
	for name, ob := range old {
		nb := next[name]
		if nb == nil {
			p.metrics.forgetBackend(name)
		}
		for addr := range ob.picks {
			if nb == nil || nb.picks[addr] == nil {
				p.metrics.forget(name, addr)
			}
		}
	}
}

// Backend is the named backend, or nil when it does not pick.
func (p *Pool) Backend(name string) *Backend {
	if pb := (*p.state.Load())[name]; pb != nil {
		return pb.b
	}
	return nil
}

// Observe counts a pick of backend in streamgate_picking_picks_total under
// its first endpoint and reason. Call it once per pick; a Result without
// endpoints or for an endpoint the backend no longer has (a reload in
// between) is not counted. Cost: two map lookups and a counter increment.
func (p *Pool) Observe(backend string, r *Result) {
	if len(r.Endpoints) == 0 {
		return
	}
	pb := (*p.state.Load())[backend]
	if pb == nil {
		return
	}
	if c := pb.picks[r.Endpoints[0]]; c != nil {
		c[reasonIndex(r.Reason)].Inc()
	}
}

// Close stops every scraper and waits for them to end; later Updates start
// none. Backends stay readable.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.cancel()
	for _, s := range p.scrapers {
		<-s.done
	}
	p.scrapers = map[scrapeKey]*scraper{}
	p.client.CloseIdleConnections()
}

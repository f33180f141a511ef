package extproc

import (
	"context"
	"log/slog"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/extproc/telemetry"
)

// generation is everything one config version gives a request: its routes
// (with their shaping and the body policy), body cap, authenticator,
// limits, telemetry and whether Envoy reads usage. A Server publishes one
// generation behind one atomic pointer; a request reads it once, when its
// ext_proc stream starts, and a reload swaps the whole value, so no request
// ever runs the routes of one config with the auth of another. Never
// modified once published: writers copy it (Server.swap).
type generation struct {
	routes  *Routes
	maxBody int64
	// maxUpload caps the bodies of contract.UploadPaths instead of maxBody.
	maxUpload int64
	// auth verifies credentials; nil leaves the gateway open.
	auth *auth.Authenticator
	// limits is nil when no limits are configured; each generation has
	// its own, sharing the limiter's state (Limits.Reload).
	limits *Limits
	tel    *Telemetry
	// sink and tracer are set at startup and carried to every generation.
	sink   *telemetry.Sink
	tracer *telemetry.Tracer
	// envoyReads says whether requests are handed to Envoy's usage
	// report (config.HandsUsageToEnvoy); servesListener, whether this
	// process publishes the listener Envoy runs (SetServesListener).
	envoyReads, servesListener bool
	// pickPolicy bounds waits for saturated backends (priority.go).
	pickPolicy pickPolicy
}

// withConfig returns a copy of g serving cfg with routes, authenticator a
// and limits lim; sink and tracer carry over.
func (g *generation) withConfig(cfg *config.Config, routes *Routes, a *auth.Authenticator, lim *Limits) *generation {
	n := *g
	n.routes, n.maxBody, n.auth, n.limits = routes, cfg.Gateway.MaxRequestBodyBytes, a, lim
	n.maxUpload = cfg.Gateway.UploadCap()
	n.tel, n.envoyReads = NewTelemetry(cfg), cfg.HandsUsageToEnvoy(g.servesListener)
	n.pickPolicy = pickPolicyOf(cfg)
	return &n
}

// swap publishes a copy of the current generation changed by edit. Writers
// are serialized; readers never wait.
func (s *Server) swap(edit func(g *generation)) {
	s.genMu.Lock()
	defer s.genMu.Unlock()
	g := *s.gen.Load()
	edit(&g)
	s.gen.Store(&g)
}

// Update swaps in a new config version whole: routes, body cap, telemetry,
// whether Envoy reads usage, authenticator a (nil: an open gateway) and
// limits lim (nil: none; else made by Limits.Reload, or NewLimits when
// there were none) change for every stream that starts afterwards, at
// once; streams already running keep the generation they started with.
// The new queue bounds and concurrency caps also apply at once to requests
// waiting in the queue (ratelimit.Limiter.Activate). Safe for concurrent
// use.
func (s *Server) Update(cfg *config.Config, routes *Routes, a *auth.Authenticator, lim *Limits) {
	s.genMu.Lock()
	defer s.genMu.Unlock()
	prev := s.gen.Load()
	s.gen.Store(prev.withConfig(cfg, routes, a, lim))
	if lim != nil && lim != prev.limits {
		lim.limiter.Activate()
	}
}

// SetAuth sets the authenticator of streams that start afterwards; nil
// leaves the gateway open and injects no upstream credentials. It is for
// startup: a reload passes the new authenticator to Update.
func (s *Server) SetAuth(a *auth.Authenticator) { s.swap(func(g *generation) { g.auth = a }) }

// SetLimits turns throttling on for streams that start afterwards. Call it
// before Serve; nil turns it off.
func (s *Server) SetLimits(l *Limits) { s.swap(func(g *generation) { g.limits = l }) }

// SetUsageSink sets where usage events of streams that start afterwards
// go; nil publishes none.
func (s *Server) SetUsageSink(k *telemetry.Sink) { s.swap(func(g *generation) { g.sink = k }) }

// SetTracer sets the tracer of streams that start afterwards; nil traces
// nothing.
func (s *Server) SetTracer(t *telemetry.Tracer) { s.swap(func(g *generation) { g.tracer = t }) }

// processor starts one request's processor on g: everything the request
// reads of the config comes from g.
func (g *generation) processor(ctx context.Context, log *slog.Logger, m *Metrics) *processor {
	p := newProcessor(g.routes, g.maxBody, log, m)
	p.ctx, p.auth, p.limits, p.envoyReads = ctx, g.auth, g.limits, g.envoyReads
	p.maxUpload = g.maxUpload
	p.pick.policy = g.pickPolicy
	p.obs.set, p.obs.sink, p.obs.tracer = g.tel, g.sink, g.tracer
	return p
}

// SetServesListener tells the server that this process also publishes the
// listener Envoy runs (streamgate run), so that Envoy carries the filters
// that read usage and the usage report log: where cfg lets Envoy read
// usage (read_usage auto), requests are handed to it.
func (s *Server) SetServesListener(cfg *config.Config) {
	s.swap(func(g *generation) {
		g.servesListener = true
		g.envoyReads = cfg.HandsUsageToEnvoy(true)
	})
}

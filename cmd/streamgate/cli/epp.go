package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc"
	"github.com/streamgate/streamgate/extproc/picking"
)

// eppCmd runs `streamgate epp`: Streamgate's picker as the endpoint picker
// (EPP) of a Gateway API InferencePool, for one backend with picking. It
// serves ext_proc on -listen (default: the config's extproc.listen) and
// metrics, /healthz and /readyz on metrics.listen; config edits apply live.
func eppCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, path := flags("epp", stderr)
	backend := fs.String("backend", "", "the backend `name` to pick for (default: the config's only backend with picking)")
	addr := fs.String("listen", "", "ext_proc `address`, host:port or unix:/path (default: the config's extproc.listen)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	cfg, err := loadReported(*path, stderr)
	if err != nil {
		return err
	}
	name, err := eppBackend(cfg, *backend)
	if err != nil {
		fmt.Fprintf(stderr, "streamgate epp: %v\n", err)
		return ErrReported
	}
	if *addr == "" {
		*addr = cfg.ExtProc.Listen
	}
	lis, err := listen(*addr)
	if err != nil {
		return err
	}
	metricsLis, err := net.Listen("tcp", cfg.Metrics.Listen)
	if err != nil {
		lis.Close()
		return fmt.Errorf("cannot listen for metrics: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	pool := picking.NewPool(reg, log)
	defer pool.Close()
	pool.Update(onlyBackend(cfg, name))
	epp := extproc.NewEPP(pool, name, cfg.Gateway.MaxRequestBodyBytes, log, extproc.NewEPPMetrics(reg))

	// The servers run until one of them fails, or until stop (SIGTERM) and
	// the drain that follows it.
	var wg sync.WaitGroup
	defer wg.Wait()
	sctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	var ready readiness
	goServe := func(what string, f func() error) {
		wg.Go(func() {
			if err := f(); err != nil {
				cancel(fmt.Errorf("%s: %w", what, err))
			}
		})
	}
	goServe("metrics", func() error { return serveMetrics(sctx, metricsLis, reg, &ready, false, nil) })
	goServe("epp", func() error { return epp.Serve(sctx, lis) })
	go watchConfig(sctx, *path, cfg, config.Load, []reloader{eppReloader(pool, name)}, reg, log)
	ready.set(true)
	log.Info("endpoint picker listening", "address", *addr, "backend", name, "metrics", cfg.Metrics.Listen)
	fmt.Fprintf(stdout, "streamgate %s picking for backend %s (config %s)\n", Version, name, *path)
	select {
	case <-ctx.Done():
		ready.set(false)
		drainEPP(sctx, epp, cfg.Gateway.DrainTimeout, log)
		cancel(nil)
	case <-sctx.Done():
	}
	ready.set(false)
	if err := context.Cause(sctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// drainEPP keeps picking, with /readyz failing so that the pod leaves its
// Service, until no request is open or timeout passes: a rolling update of
// the picker fails no request of a gateway that fails closed.
func drainEPP(ctx context.Context, epp *extproc.EPP, timeout time.Duration, log *slog.Logger) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	log.Info("draining: still picking while /readyz fails", "open", epp.Active(), "timeout", timeout.String())
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	for epp.Active() > 0 {
		select {
		case <-ctx.Done():
			log.Warn("drain timeout passed; closing open requests", "open", epp.Active())
			return
		case <-t.C:
		}
	}
	log.Info("drained", "waited", time.Since(start).Round(time.Millisecond).String())
}

// eppBackend returns the backend `streamgate epp` picks for: name, which
// must have picking, or the config's only backend with picking.
func eppBackend(cfg *config.Config, name string) (string, error) {
	var picking []string
	for i := range cfg.Backends {
		b := &cfg.Backends[i]
		if name != "" && b.Name == name {
			if b.Picking == nil {
				return "", fmt.Errorf("backend %q has no picking block; add `picking: {}` to it", name)
			}
			return name, nil
		}
		if b.Picking != nil {
			picking = append(picking, b.Name)
		}
	}
	switch {
	case name != "":
		return "", fmt.Errorf("no backend named %q in the config", name)
	case len(picking) == 1:
		return picking[0], nil
	case len(picking) == 0:
		return "", errors.New("no backend has a picking block; add `picking: {}` to the backend to pick for")
	}
	return "", fmt.Errorf("several backends have picking (%v); choose one with -backend", picking)
}

// onlyBackend is cfg reduced to backend name, so that the pool scrapes only
// the endpoints the picker serves.
func onlyBackend(cfg *config.Config, name string) *config.Config {
	c := *cfg
	c.Backends = nil
	for _, b := range cfg.Backends {
		if b.Name == name {
			c.Backends = []config.Backend{b}
		}
	}
	return &c
}

// eppReloader applies a config edit to the pool (endpoints, weights,
// intervals); an edit that removes the backend or its picking is refused,
// since the picker serves that one backend until restarted.
func eppReloader(pool *picking.Pool, name string) reloader {
	return func(c *config.Config) (func(), error) {
		if _, err := eppBackend(c, name); err != nil {
			return nil, fmt.Errorf("cannot reload: streamgate epp picks for backend %q until restarted: %w", name, err)
		}
		return func() { pool.Update(onlyBackend(c, name)) }, nil
	}
}

// loadReported loads the config at path, printing every problem found.
func loadReported(path string, stderr io.Writer) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err == nil {
		return cfg, nil
	}
	ps := config.Problems(err)
	for _, p := range ps {
		fmt.Fprintln(stderr, p.Error())
	}
	if len(ps) > 0 {
		return nil, ErrReported
	}
	return nil, err
}

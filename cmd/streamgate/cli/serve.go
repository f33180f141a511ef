package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/envoy"
	"github.com/streamgate/streamgate/extproc"
	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/extproc/budget"
	"github.com/streamgate/streamgate/extproc/picking"
	"github.com/streamgate/streamgate/extproc/telemetry"
	"github.com/streamgate/streamgate/xds"
)

// parts says which servers a command runs.
type parts struct {
	extProc, xds, envoy bool
	mode                xds.Mode
	envoyLogLevel       string
	// pprof mounts net/http/pprof on the metrics listener (pprof.go).
	pprof bool
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, path := flags("run", stderr)
	noEnvoy := fs.Bool("no-envoy", false, "do not start Envoy even when one is found")
	level := fs.String("envoy-log-level", "warning", "Envoy's log `level` (trace, debug, info, warning, error)")
	pprof := pprofFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return serve(ctx, *path, parts{extProc: true, xds: true, envoy: !*noEnvoy, envoyLogLevel: *level, pprof: *pprof}, stdout, stderr)
}

func extprocCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, path := flags("extproc", stderr)
	pprof := pprofFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return serve(ctx, *path, parts{extProc: true, pprof: *pprof}, stdout, stderr)
}

func xdsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, path := flags("xds", stderr)
	dropIn := fs.Bool("drop-in", false, "publish only the model clusters and endpoints (for an Envoy whose listeners are configured elsewhere)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	p := parts{xds: true}
	if *dropIn {
		p.mode = xds.DropIn
	}
	return serve(ctx, *path, p, stdout, stderr)
}

// serve loads the config, starts the servers p names and runs until one of
// them fails or stop is cancelled. Cancelling stop (SIGTERM) starts a
// graceful shutdown: the servers keep running while the gateway drains (see
// drainer), then they stop and Envoy gets SIGTERM.
func serve(stop context.Context, path string, p parts, stdout, stderr io.Writer) error {
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	cfg, err := config.Load(path)
	if err != nil {
		for _, pr := range config.Problems(err) {
			fmt.Fprintln(stderr, pr.Error())
		}
		if len(config.Problems(err)) > 0 {
			return ErrReported
		}
		return err
	}
	for _, w := range cfg.Warnings() {
		log.Warn("insecure configuration", "file", path, "warning", w)
	}
	envoyBin, err := findEnvoy(p.envoy, log)
	if err != nil {
		return err
	}
	p.envoy = envoyBin != ""
	load := config.Load
	if p.envoy && p.extProc && p.xds {
		var dir string
		cfg, load, dir = localExtProc(cfg, log)
		if dir != "" {
			defer os.RemoveAll(dir) // after the servers stopped (wg.Wait below)
		}
	}
	for _, w := range config.ExposureWarnings(cfg) {
		log.Warn("control listener exposed", "detail", w)
	}
	// The servers run until ctx ends; it outlives stop by the drain. On
	// every return the servers are stopped (cancel) before waiting for them.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(stop))
	defer cancel(nil)
	d := drainer{log: log, timeout: cfg.Gateway.DrainTimeout}
	// The drain timeout of the config last applied: a shutdown reads it.
	var drainTimeout atomic.Int64
	drainTimeout.Store(int64(cfg.Gateway.DrainTimeout))
	goServe := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				cancel(fmt.Errorf("%s: %w", name, err))
			}
		}()
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var ready readiness
	d.ready = &ready
	metricsLis, err := net.Listen("tcp", cfg.Metrics.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen for metrics: %w", err)
	}
	if p.pprof {
		log.Warn("profiling endpoints on the metrics listener", "address", cfg.Metrics.Listen, "path", pprofPath)
	}
	usageTok, err := usageToken(cfg)
	if err != nil {
		return err
	}
	var usageAPI *lateHandler
	if usageTok != "" && p.extProc {
		usageAPI = &lateHandler{}
		log.Info("usage API on the metrics listener", "address", cfg.Metrics.Listen, "path", budget.UsagePath)
	}
	goServe("metrics", func() error { return serveMetrics(ctx, metricsLis, reg, &ready, p.pprof, usageAPI) })

	// A reload prepares every part first and applies them only if all
	// could be built, so a bad credential never leaves half a config live.
	var reloaders []reloader
	if p.extProc {
		lis, err := listen(cfg.ExtProc.Listen)
		if err != nil {
			return err
		}
		metrics := extproc.NewMetrics(reg)
		srv := extproc.NewServer(cfg, extproc.NewRoutes(cfg, time.Now().Unix()), log, metrics)
		if p.xds && p.mode == xds.AllInOne {
			srv.SetServesListener(cfg)
		}
		if n := cfg.Telemetry.NATS; n != nil {
			sink, err := telemetry.NewSink(n, metrics.Telemetry(), log)
			if err != nil {
				return err
			}
			defer closeSink(sink)
			srv.SetUsageSink(sink)
		}
		if tc := cfg.Telemetry.Tracing; tc != nil {
			tracer, shutdown, err := telemetry.NewTracer(ctx, tc, Version)
			if err != nil {
				return err
			}
			defer shutdownTracer(shutdown, log)
			srv.SetTracer(tracer)
		}
		// Each authenticator generation owns the JWKS refreshers started
		// for it; they stop when a reload replaces it.
		authCtx, authCancel := context.WithCancel(ctx)
		authn, err := auth.New(authCtx, cfg, auth.Options{Log: log})
		if err != nil {
			authCancel()
			return err
		}
		srv.SetAuth(authn)
		limits := &liveLimits{reg: reg}
		if cfg.Limits != nil {
			lim, err := newLimits(ctx, cfg, reg, log)
			if err != nil {
				authCancel()
				return err
			}
			limits.base = lim
			srv.SetLimits(lim)
		}
		// Endpoint picking for backends with picking: the pool follows
		// every applied config, before the routes that lead to it.
		picks := picking.NewPool(reg, log)
		defer picks.Close()
		picks.Update(cfg)
		srv.SetPicking(picks)
		if usageAPI != nil {
			usageAPI.set(budget.Handler(srv.Budgets, usageTok))
		}
		d.extProc = srv
		goServe("extproc", func() error { return srv.Serve(ctx, lis) })
		reloaders = append(reloaders, func(c *config.Config) (func(), error) { return func() { picks.Update(c) }, nil },
			extProcReloader(ctx, srv, log, authCancel, limits))
		log.Info("ext_proc listening", "address", cfg.ExtProc.Listen)
	}
	if p.xds {
		lis, err := net.Listen("tcp", cfg.XDS.Listen)
		if err != nil {
			return fmt.Errorf("cannot listen for xDS: %w", err)
		}
		srv := xds.NewServer(p.mode, log)
		if _, err := srv.Update(ctx, cfg); err != nil {
			return err
		}
		goServe("xds", func() error { return srv.Serve(ctx, lis) })
		// Envoy gets new clusters and routes before ext_proc starts
		// sending requests to them.
		reloaders = append([]reloader{func(c *config.Config) (func(), error) {
			snap, err := xds.Snapshot(c, p.mode)
			if err != nil {
				return nil, err
			}
			return func() { srv.Publish(ctx, snap, len(c.Backends)) }, nil
		}}, reloaders...)
		log.Info("xDS listening", "address", cfg.XDS.Listen)
	}
	reloaders = append(reloaders, drainReloader(&drainTimeout))
	go watchConfig(ctx, path, cfg, load, reloaders, reg, log)
	if p.envoy {
		if (p.envoyLogLevel == "debug" || p.envoyLogLevel == "trace") && cfg.Auth != nil {
			// Envoy prints every request header at these levels; Streamgate cannot redact them.
			log.Warn("Envoy debug/trace logs include request headers: client keys, tokens and upstream credentials will appear in them")
		}
		proc, err := startEnvoy(ctx, cfg, envoyBin, p.envoyLogLevel, stdout, stderr, log)
		if err != nil {
			return err
		}
		shareCPUs(log)
		goServe("envoy", func() error {
			<-proc.Done()
			if ctx.Err() == nil {
				return fmt.Errorf("envoy exited: %v", proc.Err())
			}
			return nil
		})
		d.envoyAdmin = cfg.Envoy.Admin
		log.Info("envoy started", "pid", proc.Pid(), "gateway", cfg.Gateway.Listen, "admin", cfg.Envoy.Admin)
	}
	if p.extProc {
		if err := serveQueues(ctx, stop, cfg, reg, log, goServe); err != nil {
			return err
		}
	}
	ready.set(true)
	fmt.Fprintf(stdout, "streamgate %s serving (config %s)\n", Version, path)
	select {
	case <-stop.Done():
		d.timeout = time.Duration(drainTimeout.Load())
		d.drain(ctx)
		cancel(nil)
	case <-ctx.Done():
	}
	ready.set(false)
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// watchConfig applies every valid edit of the config file (or SIGHUP) to
// the running servers; an invalid edit is logged and counted and changes
// nothing.
// extProcReloader prepares a config's routes, authenticator and limits,
// and applies them to srv as one generation (extproc.Server.Update). A
// config whose authenticator or limits cannot be built leaves srv
// untouched. Each
// authenticator generation owns the JWKS refreshers started for it under a
// context; applying a new one cancels the previous one's, starting with
// authCancel.
func extProcReloader(ctx context.Context, srv *extproc.Server, log *slog.Logger, authCancel context.CancelFunc, limits *liveLimits) reloader {
	return func(c *config.Config) (func(), error) {
		lim, err := limits.prepare(c)
		if err != nil {
			return nil, err
		}
		nctx, ncancel := context.WithCancel(ctx)
		na, err := auth.New(nctx, c, auth.Options{Log: log})
		if err != nil {
			ncancel()
			return nil, err
		}
		routes := extproc.NewRoutes(c, time.Now().Unix())
		return func() {
			// Routes, auth and limits change together: one generation.
			srv.Update(c, routes, na, lim)
			authCancel()
			authCancel = ncancel
		}, nil
	}
}

// drainReloader keeps timeout at the drain timeout of the config last
// applied, for the shutdown to read.
func drainReloader(timeout *atomic.Int64) reloader {
	return func(c *config.Config) (func(), error) {
		return func() { timeout.Store(int64(c.Gateway.DrainTimeout)) }, nil
	}
}

// reloader builds what a new config needs and returns the step that puts
// it in force; the step cannot fail.
type reloader func(*config.Config) (apply func(), err error)

func watchConfig(ctx context.Context, path string, cfg *config.Config, load func(string) (*config.Config, error), reloaders []reloader, reg prometheus.Registerer, log *slog.Logger) {
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "streamgate_config_reloads_total",
		Help: "Config reloads by result (success, failure).",
	}, []string{"result"})
	reg.MustRegister(reloads)
	// Both series exist from the start, so dashboards see 0, not "no data".
	reloads.WithLabelValues("success")
	reloads.WithLabelValues("failure")
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	trigger := make(chan struct{})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case trigger <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	failed := func(err error) {
		reloads.WithLabelValues("failure").Inc()
		msgs := []string{}
		for _, p := range config.Problems(err) {
			msgs = append(msgs, p.Error())
		}
		if len(msgs) == 0 {
			msgs = append(msgs, err.Error())
		}
		log.Error("config reload rejected; the previous config keeps serving", "file", path, "problems", msgs)
	}
	startOnly := func(msg string) {
		log.Warn("config reload: a setting waits for a restart", "file", path, "detail", msg)
	}
	w := &config.Watcher{Path: path, Load: load, Trigger: trigger, OnError: failed, OnStartOnly: startOnly, OnLoad: func(c *config.Config) {
		applies := make([]func(), 0, len(reloaders))
		for _, r := range reloaders {
			apply, err := r(c)
			if err != nil {
				failed(err)
				return
			}
			applies = append(applies, apply)
		}
		for _, apply := range applies {
			apply()
		}
		reloads.WithLabelValues("success").Inc()
		log.Info("config reloaded", "file", path, "backends", len(c.Backends), "models", len(c.Models))
		for _, w := range c.Warnings() {
			log.Warn("insecure configuration", "file", path, "warning", w)
		}
	}}
	w.Run(ctx, cfg)
}

// startEnvoy renders the bootstrap into a temporary file and starts Envoy (bin)
// with its standard output on stdout (an access log at /dev/stdout lands
// there) and its own log on stderr.
func startEnvoy(ctx context.Context, cfg *config.Config, bin, level string, stdout, stderr io.Writer, log *slog.Logger) (*envoy.Process, error) {
	boot, err := envoy.Bootstrap(envoy.BootstrapOptions{NodeID: cfg.Envoy.NodeID, XDS: cfg.XDS.Listen, Admin: cfg.Envoy.Admin, MaxHeapBytes: cfg.Envoy.MaxHeapBytes})
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "streamgate-envoy-")
	if err != nil {
		return nil, fmt.Errorf("cannot create bootstrap dir: %w", err)
	}
	context.AfterFunc(ctx, func() { _ = os.RemoveAll(dir) })
	bootPath := filepath.Join(dir, "bootstrap.yaml")
	if err := os.WriteFile(bootPath, boot, 0o600); err != nil {
		return nil, fmt.Errorf("cannot write bootstrap: %w", err)
	}
	log.Info("starting envoy", "binary", bin, "bootstrap", bootPath)
	return envoy.StartOutput(ctx, bin, bootPath, level, stdout, stderr)
}

// listen opens a TCP listener, or a unix socket for "unix:/path".
func listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		_ = os.Remove(path)
		lis, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("cannot listen on %s: %w", addr, err)
		}
		return lis, nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	return lis, nil
}

// readiness is what /readyz reports.
type readiness struct {
	mu sync.Mutex
	ok bool
}

func (r *readiness) set(ok bool) { r.mu.Lock(); r.ok = ok; r.mu.Unlock() }
func (r *readiness) get() bool   { r.mu.Lock(); defer r.mu.Unlock(); return r.ok }

// serveMetrics serves /metrics, /healthz and /readyz on lis, the
// profiling endpoints (mountPprof) when pprof is set and the usage API
// when usage is set (its own bearer token), until ctx ends.
func serveMetrics(ctx context.Context, lis net.Listener, reg *prometheus.Registry, ready *readiness, pprof bool, usage *lateHandler) error {
	mux := http.NewServeMux()
	if pprof {
		mountPprof(mux)
	}
	if usage != nil {
		mux.Handle(budget.UsagePath, usage)
		mux.Handle(budget.SeriesPath, usage)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.get() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("cannot serve metrics: %w", err)
	}
	return nil
}

// closeSink sends the usage events still queued, for at most five seconds.
func closeSink(s *telemetry.Sink) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Close(ctx)
}

// shutdownTracer exports the spans still buffered, for at most five seconds.
func shutdownTracer(shutdown func(context.Context) error, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		log.Warn("cannot flush trace spans", "error", err.Error())
	}
}

// serveQueues starts the work that reaches the gateway through its own
// listener, after Envoy is up: the event-stream bridge with bridge.run
// (docs/streams.md) and the Batch API's service, which Envoy routes
// /v1/files and /v1/batches to (docs/batch.md). Both stop fetching new
// work when stop ends (SIGTERM); requests under way finish in the drain.
func serveQueues(ctx, stop context.Context, cfg *config.Config, reg *prometheus.Registry, log *slog.Logger, goServe func(string, func() error)) error {
	if b := cfg.Bridge; b != nil && b.Run {
		br, err := newBridge(ctx, cfg, reg, log)
		if err != nil {
			return err
		}
		bctx, bcancel := context.WithCancel(stop)
		context.AfterFunc(ctx, bcancel)
		goServe("bridge", func() error { defer bcancel(); return br.Run(bctx) })
	}
	if cfg.Batch != nil {
		serveBatch, err := newBatch(cfg, log)
		if err != nil {
			return err
		}
		bctx, bcancel := context.WithCancel(stop)
		context.AfterFunc(ctx, bcancel)
		goServe("batch", func() error { defer bcancel(); return serveBatch(bctx) })
	}
	return nil
}

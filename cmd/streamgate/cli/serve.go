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
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/envoy"
	"github.com/streamgate/streamgate/extproc"
	"github.com/streamgate/streamgate/xds"
)

// parts says which servers a command runs.
type parts struct {
	extProc, xds, envoy bool
	mode                xds.Mode
	envoyLogLevel       string
	envoyRequired       bool
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, path := flags("run", stderr)
	noEnvoy := fs.Bool("no-envoy", false, "do not start Envoy even when one is found")
	level := fs.String("envoy-log-level", "warning", "Envoy's log `level` (trace, debug, info, warning, error)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return serve(ctx, *path, parts{extProc: true, xds: true, envoy: !*noEnvoy, envoyLogLevel: *level}, stdout, stderr)
}

func extprocCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, path := flags("extproc", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return serve(ctx, *path, parts{extProc: true}, stdout, stderr)
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

// serve loads the config, starts the servers p names and runs until ctx is
// cancelled or one of them fails.
func serve(ctx context.Context, path string, p parts, stdout, stderr io.Writer) error {
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
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	defer wg.Wait()
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
	metricsLis, err := net.Listen("tcp", cfg.Metrics.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen for metrics: %w", err)
	}
	goServe("metrics", func() error { return serveMetrics(ctx, metricsLis, reg, &ready) })

	if p.extProc {
		lis, err := listen(cfg.ExtProc.Listen)
		if err != nil {
			return err
		}
		srv := extproc.NewServer(cfg, extproc.NewRoutes(cfg, time.Now().Unix()), log, extproc.NewMetrics(reg))
		if cfg.Limits != nil {
			lim, err := newLimits(cfg, reg, log)
			if err != nil {
				return err
			}
			srv.SetLimits(lim)
		}
		goServe("extproc", func() error { return srv.Serve(ctx, lis) })
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
		log.Info("xDS listening", "address", cfg.XDS.Listen)
	}
	if p.envoy {
		proc, err := startEnvoy(ctx, cfg, p.envoyLogLevel, stderr, log)
		switch {
		case errors.Is(err, envoy.ErrNotFound):
			log.Warn("not starting Envoy", "reason", err.Error())
		case err != nil:
			return err
		default:
			goServe("envoy", func() error {
				<-proc.Done()
				if ctx.Err() == nil {
					return fmt.Errorf("envoy exited: %v", proc.Err())
				}
				return nil
			})
			log.Info("envoy started", "pid", proc.Pid(), "gateway", cfg.Gateway.Listen, "admin", cfg.Envoy.Admin)
		}
	}
	ready.set(true)
	fmt.Fprintf(stdout, "streamgate %s serving (config %s)\n", Version, path)
	<-ctx.Done()
	ready.set(false)
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// startEnvoy renders the bootstrap into a temporary file and starts Envoy.
func startEnvoy(ctx context.Context, cfg *config.Config, level string, logs io.Writer, log *slog.Logger) (*envoy.Process, error) {
	wd, _ := os.Getwd()
	bin, err := envoy.Find(wd)
	if err != nil {
		return nil, err
	}
	boot, err := envoy.Bootstrap(envoy.BootstrapOptions{NodeID: cfg.Envoy.NodeID, XDS: cfg.XDS.Listen, Admin: cfg.Envoy.Admin})
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
	return envoy.Start(ctx, bin, bootPath, level, logs)
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

func serveMetrics(ctx context.Context, lis net.Listener, reg *prometheus.Registry, ready *readiness) error {
	mux := http.NewServeMux()
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

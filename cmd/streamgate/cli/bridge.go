package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/streamgate/streamgate/bridge"
	"github.com/streamgate/streamgate/config"
)

// errNoBridge is a `streamgate bridge` whose config has no bridge section.
var errNoBridge = errors.New("the config has no bridge section (docs/streams.md)")

// bridgeCmd runs the event-stream bridge alone (docs/streams.md): it
// consumes the sources of the config's bridge section and sends every
// request through the gateway at bridge.gateway_url. SIGINT/SIGTERM stop
// it fetching; the requests it holds finish and are acknowledged first.
func bridgeCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, path := flags("bridge", stderr)
	metricsAddr := fs.String("metrics", "127.0.0.1:9465", "`address` serving the bridge's /metrics, /healthz and /readyz")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	cfg, err := config.Load(*path)
	if err != nil {
		for _, pr := range config.Problems(err) {
			fmt.Fprintln(stderr, pr.Error())
		}
		if len(config.Problems(err)) > 0 {
			return ErrReported
		}
		return err
	}
	if cfg.Bridge == nil {
		return errNoBridge
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	lis, err := net.Listen("tcp", *metricsAddr)
	if err != nil {
		return fmt.Errorf("cannot listen for metrics: %w", err)
	}
	srvCtx, stopMetrics := context.WithCancel(context.WithoutCancel(ctx))
	metricsDone := make(chan struct{})
	defer func() { stopMetrics(); <-metricsDone }() // the listener is closed on return
	var ready readiness
	go func() { defer close(metricsDone); _ = serveMetrics(srvCtx, lis, reg, &ready, false, nil) }()
	br, err := newBridge(ctx, cfg, reg, log)
	if err != nil {
		return err
	}
	ready.set(true)
	fmt.Fprintf(stdout, "streamgate %s bridge serving (config %s, gateway %s)\n", Version, *path, cfg.Bridge.GatewayURL)
	err = br.Run(ctx)
	ready.set(false)
	return err
}

// newBridge builds cfg's bridge with its metrics on reg.
func newBridge(ctx context.Context, cfg *config.Config, reg prometheus.Registerer, log *slog.Logger) (*bridge.Bridge, error) {
	br, err := bridge.New(ctx, cfg.Bridge, bridge.NewMetrics(reg), log)
	if err != nil {
		return nil, err
	}
	log.Info("bridge started", "sources", len(cfg.Bridge.Sources), "gateway", cfg.Bridge.GatewayURL)
	return br, nil
}

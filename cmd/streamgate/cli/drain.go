package cli

import (
	"context"
	"log/slog"
	"time"

	"github.com/streamgate/streamgate/envoy"
	"github.com/streamgate/streamgate/extproc"
)

// drainPoll is how often a drain checks whether requests are still open.
const drainPoll = 100 * time.Millisecond

// drainer runs the first phase of a graceful shutdown: stop admitting new
// requests and wait, up to timeout, until the open ones have finished.
// The servers (ext_proc, xDS, Envoy) keep running meanwhile; stopping
// them is the caller's second phase.
type drainer struct {
	log     *slog.Logger
	timeout time.Duration
	// ready turns /readyz to 503 once new requests are refused.
	ready *readiness
	// extProc, when set, refuses new requests with 503 and counts the open ones.
	extProc *extproc.Server
	// envoyAdmin, when set, is the admin address of the Envoy this process
	// started: its listeners drain and its active requests are counted.
	envoyAdmin string
}

// drain returns when no request is open any more, when the drain timeout
// has passed, or when ctx ends (a server failed).
func (d drainer) drain(ctx context.Context) {
	if d.extProc != nil {
		d.extProc.Drain()
	}
	d.ready.set(false)
	if d.extProc == nil && d.envoyAdmin == "" {
		return
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	if d.envoyAdmin != "" {
		if err := envoy.FailHealthcheck(ctx, d.envoyAdmin); err != nil {
			d.log.Warn("cannot fail envoy's health check", "error", err.Error())
		}
		if err := envoy.DrainListeners(ctx, d.envoyAdmin); err != nil {
			d.log.Warn("cannot drain envoy's listeners", "error", err.Error())
		}
	}
	open := d.open(ctx)
	d.log.Info("draining: new requests get 503, open requests may finish", "open", open, "timeout", d.timeout.String())
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	for open > 0 {
		select {
		case <-ctx.Done():
			d.log.Warn("drain timeout passed; closing open requests", "open", open, "waited", time.Since(start).Round(time.Millisecond).String())
			return
		case <-t.C:
			open = d.open(ctx)
		}
	}
	d.log.Info("drained", "waited", time.Since(start).Round(time.Millisecond).String())
}

// open counts the requests still in flight: Envoy's active downstream
// requests, or the open ext_proc streams when Envoy is not ours (or its
// admin does not answer).
func (d drainer) open(ctx context.Context) int64 {
	var n int64
	if d.extProc != nil {
		n = d.extProc.Active()
	}
	if d.envoyAdmin != "" {
		active, err := envoy.ActiveRequests(ctx, d.envoyAdmin)
		if err != nil {
			d.log.Warn("cannot count envoy's open requests", "error", err.Error())
			return max(n, 1)
		}
		n = max(n, active)
	}
	return n
}

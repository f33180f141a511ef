// Package extproc is Streamgate's ext_proc server: Envoy hands it each
// request's headers and buffered body; it picks the backend, rewrites what
// the backend needs and rejects bad requests with protocol-correct errors.
package extproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc/picking"
	"github.com/streamgate/streamgate/extproc/telemetry"
)

// drainTimeout bounds how long Serve waits for open streams at shutdown.
const drainTimeout = 30 * time.Second

// Server implements Envoy's ExternalProcessor service. One Server serves
// every Envoy stream concurrently; the config generation is swapped whole.
type Server struct {
	extprocsvcv3.UnimplementedExternalProcessorServer

	// gen is the config generation new streams read (generation.go);
	// genMu serializes its writers.
	gen     atomic.Pointer[generation]
	genMu   sync.Mutex
	log     *slog.Logger
	metrics *Metrics

	// reports pairs handed-over requests with Envoy's usage reports.
	reports *reports

	// draining makes new requests fail with 503 (see Drain); active
	// counts open ext_proc streams.
	draining atomic.Bool
	active   atomic.Int64

	// picks picks endpoints for backends with picking (picking.go); nil
	// when the server does not pick.
	picks *picking.Pool
}

var _ extprocsvcv3.ExternalProcessorServer = (*Server)(nil)

// NewServer returns a Server serving cfg. metrics may be nil.
func NewServer(cfg *config.Config, routes *Routes, log *slog.Logger, metrics *Metrics) *Server {
	s := &Server{log: log, metrics: metrics}
	s.reports = newReports(log, &s.active)
	s.gen.Store((&generation{}).withConfig(cfg, routes, nil, nil))
	metrics.tel().SetQueueDepth(s.queueDepth)
	return s
}

// queueDepth is how many requests wait in the limiter's queue now.
func (s *Server) queueDepth() int {
	if l := s.gen.Load().limits; l != nil {
		return l.limiter.Waiting()
	}
	return 0
}

// Process handles one HTTP request's ext_proc stream. A request whose
// usage Envoy reads is handed over at its body answer: the stream ends
// there and the request waits, parked, for its usage report (report.go).
func (s *Server) Process(stream extprocsvcv3.ExternalProcessor_ProcessServer) error {
	req, err := stream.Recv()
	if end, err := streamEnd(err); end {
		return err
	}
	if isUpstream(req) {
		return s.processUpstream(stream, req)
	}
	p := s.gen.Load().processor(stream.Context(), s.log, s.metrics)
	p.reports = s.reports
	p.pick.pool = s.picks
	s.active.Add(1)
	defer s.active.Add(-1)
	p.obs.start = p.now()
	tm := s.metrics.tel()
	tm.StreamStarted()
	defer tm.StreamEnded()
	handedOver := false
	defer func() {
		if !handedOver {
			p.finish()
		}
	}()
	for {
		began := p.now()
		var resp *extprocsvcv3.ProcessingResponse
		if _, first := req.Request.(*extprocsvcv3.ProcessingRequest_RequestHeaders); first && s.draining.Load() {
			resp = p.fail(reject(ErrDraining, "The gateway is shutting down; retry the request."))
		} else {
			resp = p.handle(req)
		}
		tm.Phase(phaseOf(req), p.now().Sub(began))
		// Once parked, p belongs to its usage report (which Envoy may send
		// as soon as this answer arrives and the response is over) or the
		// settling timer: read nothing of p after park.
		done := p.done(resp)
		handedOver = p.reportKey != ""
		key := p.reportKey
		if handedOver {
			s.reports.park(p)
		}
		if err := stream.Send(resp); err != nil {
			if handedOver {
				// Envoy never got the key: no report will come.
				if q := s.reports.claim(key); q != nil {
					q.finish()
					s.reports.settled()
				}
			}
			return fmt.Errorf("cannot send to envoy: %w", err)
		}
		if done || handedOver {
			return nil
		}
		if req, err = stream.Recv(); err != nil {
			_, err = streamEnd(err)
			return err
		}
	}
}

// streamEnd classifies a Recv error: Envoy closing or cancelling the
// stream is a normal end; anything else is an error to report.
func streamEnd(err error) (bool, error) {
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled:
		return true, nil
	}
	return true, fmt.Errorf("cannot receive from envoy: %w", err)
}

// Drain makes the server refuse every request whose headers arrive from now
// on with a 503 OpenAI error; requests already past their headers go on.
// Safe for concurrent use; there is no way back.
func (s *Server) Drain() { s.draining.Store(true) }

// Active is the number of open ext_proc streams (one per request Envoy is
// processing). Safe for concurrent use.
func (s *Server) Active() int64 { return s.active.Load() }

// GRPCOptions returns the server options a body of maxBody bytes needs:
// Envoy sends the whole buffered body in one message.
//
// The rest is for the many short streams one Envoy opens over few
// connections: flow-control windows fixed at 1 MiB per stream (4 MiB per
// connection) so a large prompt crosses in one flight instead of waiting for
// window updates while BDP probing grows them; stream handlers run on a pool
// of long-lived goroutines instead of one new goroutine per request. (Write
// buffers are shared by the connection, not held per stream: grpc-go's
// default since SharedWriteBuffer was deprecated.)
//
// Measured against these (BenchmarkPolicyServerRequest, CPU per request,
// 4 interleaved runs each on a loaded 2-core machine): a goroutine per
// stream (no NumStreamWorkers), BDP-grown windows, 256 KiB and 8 KiB
// read/write buffers all landed within the noise of these options; an
// unbuffered writer (WriteBufferSize 0) cost ~40% more.
func GRPCOptions(maxBody int64) []grpc.ServerOption {
	limit := int(maxBody) + 1<<20
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(limit), grpc.MaxSendMsgSize(limit),
		grpc.InitialWindowSize(1 << 20), grpc.InitialConnWindowSize(4 << 20),
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
	}
}

// Serve answers ext_proc, Envoy's gRPC access logs (AccessLog) and gRPC
// health on lis until ctx is done.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	g := s.gen.Load()
	gs := grpc.NewServer(GRPCOptions(max(g.maxBody, g.maxUpload))...)
	extprocsvcv3.RegisterExternalProcessorServer(gs, s)
	al := NewAccessLog(s.metrics, func() *Routes { return s.gen.Load().routes }, s.log)
	al.reports = s.reports
	al.sink = func() *telemetry.Sink { return s.gen.Load().sink }
	alsv3.RegisterAccessLogServiceServer(gs, al)
	return serveWithHealth(ctx, gs, lis)
}

// serveWithHealth adds gRPC health to gs and serves lis until ctx ends,
// then lets running exchanges finish for up to drainTimeout.
func serveWithHealth(ctx context.Context, gs *grpc.Server, lis net.Listener) error {
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	go func() {
		<-ctx.Done()
		hs.Shutdown()
		// Let running requests finish their ext_proc exchange, but not forever.
		t := time.AfterFunc(drainTimeout, gs.Stop)
		gs.GracefulStop()
		t.Stop()
	}()
	if err := gs.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("cannot serve ext_proc: %w", err)
	}
	return nil
}

// phaseOf names the ext_proc phase of a message, for the latency histogram.
func phaseOf(req *extprocsvcv3.ProcessingRequest) int {
	switch req.Request.(type) {
	case *extprocsvcv3.ProcessingRequest_RequestHeaders:
		return telemetry.PhaseRequestHeaders
	case *extprocsvcv3.ProcessingRequest_RequestBody:
		return telemetry.PhaseRequestBody
	case *extprocsvcv3.ProcessingRequest_ResponseHeaders:
		return telemetry.PhaseResponseHeaders
	case *extprocsvcv3.ProcessingRequest_ResponseBody:
		return telemetry.PhaseResponseBody
	}
	return telemetry.PhaseOther
}

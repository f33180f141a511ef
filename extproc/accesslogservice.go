package extproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	alsdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	grpcstatsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_stats/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/telemetry"
)

// Bounds on what one access log entry may claim. An entry is only as
// trustworthy as its sender: beyond these a call is not plausible (64 GiB
// or four billion messages in one gRPC call), and the entry is dropped
// rather than added to the counters.
const (
	maxCallBytes    = 1 << 36
	maxCallMessages = 1 << 32
)

// AccessLog receives Envoy's gRPC access log entries for gRPC calls and
// turns them into per-model message and byte counts. Envoy writes an entry
// when a call ends, asynchronously: the data path never waits for it.
//
// The entries are unauthenticated claims, so only a local Envoy may send
// them: a stream from a peer that is neither loopback nor a unix socket is
// refused with PermissionDenied (see LocalPeer), and entries with
// implausible counts are dropped.
type AccessLog struct {
	alsv3.UnimplementedAccessLogServiceServer
	metrics *Metrics
	// routes returns the current routing table, which bounds the labels.
	routes func() *Routes
	log    *slog.Logger
	// reports takes the usage reports (nil: they are dropped).
	reports *reports
	// sink returns where service requests' usage events go (nil: none).
	sink func() *telemetry.Sink
}

var _ alsv3.AccessLogServiceServer = (*AccessLog)(nil)

// NewAccessLog returns an access log sink recording into m (nil records
// nothing) and reporting refused peers and entries to log (nil: discarded).
// Models and clusters routes does not know are labelled "other", so entries
// cannot grow the metrics' series.
func NewAccessLog(m *Metrics, routes func() *Routes, log *slog.Logger) *AccessLog {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &AccessLog{metrics: m, routes: routes, log: log}
}

// LocalPeer reports whether the gRPC peer of ctx is on this host's
// loopback or a unix socket: the only places Envoy's access log stream may
// come from.
func LocalPeer(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	if _, unix := p.LocalAddr.(*net.UnixAddr); unix {
		return true // an unnamed unix client may have no remote address
	}
	switch a := p.Addr.(type) {
	case *net.UnixAddr:
		return true
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	}
	return false
}

// StreamAccessLogs reads one Envoy access log stream until Envoy closes it.
// Streams from non-local peers are refused before any entry is read.
func (a *AccessLog) StreamAccessLogs(stream alsv3.AccessLogService_StreamAccessLogsServer) error {
	if !LocalPeer(stream.Context()) {
		a.log.Warn("access log stream refused: not a local peer", "peer", peerAddr(stream.Context()))
		return status.Error(codes.PermissionDenied, "access log entries are accepted from a local Envoy only")
	}
	var logName string
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
			return nil
		}
		if err != nil {
			return fmt.Errorf("cannot receive access logs: %w", err)
		}
		if name := msg.GetIdentifier().GetLogName(); name != "" {
			logName = name // Envoy names the log in a stream's first message
		}
		for _, e := range msg.GetHttpLogs().GetLogEntry() {
			if logName == contract.UsageReportLog {
				if a.reports != nil {
					a.reports.settle(e)
				}
				continue
			}
			if logName == contract.ServiceLog {
				a.recordService(e)
				continue
			}
			if logName == contract.RealtimeLog {
				a.recordRealtime(e)
				continue
			}
			a.record(e)
		}
	}
}

// routedLabels are the model and backend labels of an entry for a call or
// session the gateway routed, bounded by the routing table (names it does
// not know are "other"); ok is false for one it did not route. The model
// header is the public name ext_proc verified and set; calls it refused
// never reached a backend cluster and carry the client's.
func (a *AccessLog) routedLabels(e *alsdatav3.HTTPAccessLogEntry) (model, backend string, ok bool) {
	backend = e.GetCommonProperties().GetUpstreamCluster()
	model = e.GetRequest().GetRequestHeaders()[contract.ModelHeader]
	if model == "" || backend == "" || backend == contract.UnroutedCluster {
		return "", "", false
	}
	var routes *Routes
	if a.routes != nil {
		routes = a.routes()
	}
	return routes.labelModel(model), routes.labelCluster(backend), true
}

// record counts one finished gRPC call that the gateway routed.
func (a *AccessLog) record(e *alsdatav3.HTTPAccessLogEntry) {
	if a.metrics == nil {
		return
	}
	cp := e.GetCommonProperties()
	model, backend, ok := a.routedLabels(e)
	if !ok {
		return
	}
	var counts grpcstatsv3.FilterObject
	if fs := cp.GetFilterStateObjects()[contract.GRPCStatsFilterState]; fs != nil {
		if err := fs.UnmarshalTo(&counts); err != nil {
			return
		}
	}
	reqMsgs, respMsgs := counts.GetRequestMessageCount(), counts.GetResponseMessageCount()
	reqBytes, respBytes := e.GetRequest().GetRequestBodyBytes(), e.GetResponse().GetResponseBodyBytes()
	if reqMsgs > maxCallMessages || respMsgs > maxCallMessages || reqBytes > maxCallBytes || respBytes > maxCallBytes {
		a.log.Warn("access log entry dropped: implausible counts", "backend", backend,
			"request_bytes", reqBytes, "response_bytes", respBytes)
		return
	}
	m := a.metrics
	m.grpcMessages.WithLabelValues(model, backend, "request").Add(float64(reqMsgs))
	m.grpcMessages.WithLabelValues(model, backend, "response").Add(float64(respMsgs))
	m.grpcBytes.WithLabelValues(model, backend, "request").Add(float64(reqBytes))
	m.grpcBytes.WithLabelValues(model, backend, "response").Add(float64(respBytes))
}

// peerAddr names the gRPC peer of ctx, for logs.
func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return "unknown"
}

package extproc

import (
	"errors"
	"fmt"
	"io"

	alsdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	grpcstatsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_stats/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/streamgate/streamgate/xds"
)

// GRPCStatsFilterState is the filter state key under which Envoy's grpc_stats
// filter leaves a call's message counts.
const GRPCStatsFilterState = "envoy.filters.http.grpc_stats"

// AccessLog receives Envoy's gRPC access log entries for gRPC calls and
// turns them into per-model message and byte counts. Envoy writes an entry
// when a call ends, asynchronously: the data path never waits for it.
type AccessLog struct {
	alsv3.UnimplementedAccessLogServiceServer
	metrics *Metrics
	// routes returns the current routing table, which bounds the labels.
	routes func() *Routes
}

var _ alsv3.AccessLogServiceServer = (*AccessLog)(nil)

// NewAccessLog returns an access log sink recording into m (nil records
// nothing). Models and clusters routes does not know are labelled "other",
// so entries cannot grow the metrics' series.
func NewAccessLog(m *Metrics, routes func() *Routes) *AccessLog {
	return &AccessLog{metrics: m, routes: routes}
}

// StreamAccessLogs reads one Envoy access log stream until Envoy closes it.
func (a *AccessLog) StreamAccessLogs(stream alsv3.AccessLogService_StreamAccessLogsServer) error {
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
			return nil
		}
		if err != nil {
			return fmt.Errorf("cannot receive access logs: %w", err)
		}
		for _, e := range msg.GetHttpLogs().GetLogEntry() {
			a.record(e)
		}
	}
}

// record counts one finished gRPC call that the gateway routed.
func (a *AccessLog) record(e *alsdatav3.HTTPAccessLogEntry) {
	if a.metrics == nil {
		return
	}
	cp := e.GetCommonProperties()
	backend := cp.GetUpstreamCluster()
	// The model header is the public name ext_proc verified and set; calls
	// it refused never reached a backend cluster and carry the client's.
	model := e.GetRequest().GetRequestHeaders()[ModelHeader]
	if model == "" || backend == "" || backend == xds.UnroutedCluster {
		return
	}
	var routes *Routes
	if a.routes != nil {
		routes = a.routes()
	}
	model, backend = routes.labelModel(model), routes.labelCluster(backend)
	var counts grpcstatsv3.FilterObject
	if fs := cp.GetFilterStateObjects()[GRPCStatsFilterState]; fs != nil {
		if err := fs.UnmarshalTo(&counts); err != nil {
			return
		}
	}
	m := a.metrics
	m.grpcMessages.WithLabelValues(model, backend, "request").Add(float64(counts.GetRequestMessageCount()))
	m.grpcMessages.WithLabelValues(model, backend, "response").Add(float64(counts.GetResponseMessageCount()))
	m.grpcBytes.WithLabelValues(model, backend, "request").Add(float64(e.GetRequest().GetRequestBodyBytes()))
	m.grpcBytes.WithLabelValues(model, backend, "response").Add(float64(e.GetResponse().GetResponseBodyBytes()))
}

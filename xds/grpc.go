package xds

import (
	"fmt"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	grpcalsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	grpcstatsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_stats/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

// HTTP/2 settings toward clients: Envoy's edge-proxy recommendations. A
// client may send at most clientStreamWindow per stream and
// clientConnectionWindow per connection before Envoy acknowledges it, and
// open at most gateway.max_concurrent_streams streams per connection.
const (
	clientStreamWindow     = 64 << 10
	clientConnectionWindow = 1 << 20
)

// HTTP/2 settings toward backends, for long-lived streams (gRPC bidi,
// token streams).
const (
	// h2StreamWindow bounds what a peer may send on one stream before Envoy
	// acknowledges it. When the other side of the proxy reads slowly, Envoy
	// stops acknowledging, so per stream Envoy holds at most this much plus
	// its per-stream buffer limit (Envoy's default window is 256 MiB).
	h2StreamWindow = 1 << 20
	// h2ConnectionWindow is the window of a whole connection. Envoy returns
	// connection window only as it forwards data, so stalled streams keep
	// theirs: the connection window must exceed streams x h2StreamWindow or
	// a few slow readers would block every other stream on the connection.
	// Memory stays bounded per stream by h2StreamWindow: a backend cannot
	// have more streams than clients opened (max_concurrent_streams per
	// client connection, tenant limits, circuit breakers), and each holds
	// at most h2StreamWindow. Only backends use it: toward clients a large
	// connection window would let one connection park its uploads in
	// Envoy (clientConnectionWindow).
	h2ConnectionWindow = 1 << 30
	// h2KeepaliveInterval is how often Envoy pings an HTTP/2 peer; a peer
	// that does not answer within h2KeepaliveTimeout is dropped with all its
	// streams, so a dead backend or client cannot hold a bidi stream open.
	// gRPC servers by default refuse pings more often than every 5 minutes
	// while they send nothing (GOAWAY "too_many_pings" after 2 strikes,
	// killing every stream on the connection); Envoy adds up to 15% jitter
	// on top of the interval, never less.
	h2KeepaliveInterval = 5 * time.Minute
	h2KeepaliveTimeout  = 20 * time.Second
)

// inferenceService is the KServe v2 gRPC service whose messages Envoy counts.
const inferenceService = "inference.GRPCInferenceService"

// inferenceMethods are the methods with per-method message stats: every
// method the gateway may forward (config.GRPCKnownMethods), a fixed list,
// so clients cannot add stats with made-up method names.
var inferenceMethods = config.GRPCKnownMethods

// http2Options are the HTTP/2 settings toward a backend: bounded windows and
// connection keepalive pings.
func backendHTTP2Options() *corev3.Http2ProtocolOptions {
	return &corev3.Http2ProtocolOptions{
		InitialStreamWindowSize:     wrapperspb.UInt32(h2StreamWindow),
		InitialConnectionWindowSize: wrapperspb.UInt32(h2ConnectionWindow),
		ConnectionKeepalive: &corev3.KeepaliveSettings{
			Interval: durationpb.New(h2KeepaliveInterval),
			Timeout:  durationpb.New(h2KeepaliveTimeout),
		},
	}
}

// downstreamHTTP2Options are the settings toward clients: bounded streams
// per connection, small windows (a client's uploads wait in its own
// buffers, not Envoy's) and the same keepalive pings as toward backends.
func downstreamHTTP2Options(g config.Gateway) *corev3.Http2ProtocolOptions {
	o := backendHTTP2Options()
	o.MaxConcurrentStreams = wrapperspb.UInt32(uint32(g.MaxConcurrentStreams))
	o.InitialStreamWindowSize = wrapperspb.UInt32(clientStreamWindow)
	o.InitialConnectionWindowSize = wrapperspb.UInt32(clientConnectionWindow)
	return o
}

// grpcStatsFilter counts gRPC request and response messages per backend
// cluster and KServe v2 method (Envoy stats
// cluster.<backend>.grpc.inference.GRPCInferenceService.<method>.*). It
// reads gRPC frame headers as data passes and holds nothing back; requests
// that are not gRPC pass untouched.
func grpcStatsFilter() (*hcmv3.HttpFilter, error) {
	methods := make([]*corev3.GrpcMethodList_Service, 0, 1)
	methods = append(methods, &corev3.GrpcMethodList_Service{Name: inferenceService, MethodNames: inferenceMethods})
	return typed(wellknown.HTTPGRPCStats, &grpcstatsv3.FilterConfig{
		EmitFilterState: true, // read by the gRPC access log
		PerMethodStatSpecifier: &grpcstatsv3.FilterConfig_IndividualMethodStatsAllowlist{
			IndividualMethodStatsAllowlist: &corev3.GrpcMethodList{Services: methods},
		},
	})
}

// grpcHealthCheck probes a gRPC backend with grpc.health.v1 (overall server health).
func grpcHealthCheck() *corev3.HealthCheck_GrpcHealthCheck_ {
	return &corev3.HealthCheck_GrpcHealthCheck_{GrpcHealthCheck: &corev3.HealthCheck_GrpcHealthCheck{}}
}

// grpcLocalReply keeps Envoy's own replies to gRPC calls (upstream
// unreachable, reset, ...) plain: Envoy sends them trailers-only with a
// grpc-status mapped from the HTTP status and the body as grpc-message, so
// the body stays Envoy's text instead of the OpenAI JSON shape. It must come
// before the JSON mappers: the first matching mapper wins.
func grpcLocalReply() *hcmv3.ResponseMapper {
	return &hcmv3.ResponseMapper{
		Filter: &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_HeaderFilter{
			HeaderFilter: &accesslogv3.HeaderFilter{Header: grpcContentType()},
		}},
		BodyFormatOverride: &corev3.SubstitutionFormatString{
			Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
				Specifier: &corev3.DataSource_InlineString{InlineString: "%LOCAL_REPLY_BODY%"},
			}},
		},
	}
}

// grpcAccessLogName is the log name of the gRPC access log stream.
const (
	grpcAccessLogName = "streamgate_grpc"
	grpcAccessLogger  = wellknown.HTTPGRPCAccessLog
)

// grpcAccessLog sends an entry for every gRPC call, when it ends, to the
// ext_proc server's AccessLogService, carrying the verified model header
// and the grpc_stats message counts; the server turns them into per-model
// message and byte metrics. Envoy buffers and sends entries asynchronously.
func grpcAccessLog() (*accesslogv3.AccessLog, error) {
	a, err := toAny(&grpcalsv3.HttpGrpcAccessLogConfig{
		CommonConfig: extProcLog(grpcAccessLogName, time.Second, func(c *grpcalsv3.CommonGrpcAccessLogConfig) {
			c.FilterStateObjectsToLog = []string{contract.GRPCStatsFilterState}
		}),
		AdditionalRequestHeadersToLog: []string{contract.ModelHeader},
	})
	if err != nil {
		return nil, fmt.Errorf("cannot encode gRPC access log config: %w", err)
	}
	return &accesslogv3.AccessLog{
		Name:       grpcAccessLogger,
		Filter:     &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_HeaderFilter{HeaderFilter: &accesslogv3.HeaderFilter{Header: grpcContentType()}}},
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: a},
	}, nil
}

// grpcContentType matches requests whose content-type is gRPC's.
func grpcContentType() *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{
		Name: "content-type",
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "application/grpc"},
		}},
	}
}

// withoutGRPCAccessLog drops the gRPC access log, which needs the ext_proc
// cluster, from logs.
func withoutGRPCAccessLog(logs []*accesslogv3.AccessLog) []*accesslogv3.AccessLog {
	kept := logs[:0]
	for _, l := range logs {
		if l.GetName() != grpcAccessLogger {
			kept = append(kept, l)
		}
	}
	return kept
}

// extProcLog is the common part of the gRPC access logs Envoy sends to
// Streamgate's AccessLogService on the ext_proc cluster: the log's name
// and how long Envoy may buffer entries; more sets the log's other fields.
func extProcLog(name string, flush time.Duration, more ...func(*grpcalsv3.CommonGrpcAccessLogConfig)) *grpcalsv3.CommonGrpcAccessLogConfig {
	c := &grpcalsv3.CommonGrpcAccessLogConfig{
		LogName: name,
		GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
			EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: contract.ExtProcCluster},
		}},
		TransportApiVersion: corev3.ApiVersion_V3,
		BufferFlushInterval: durationpb.New(flush),
	}
	for _, f := range more {
		f(c)
	}
	return c
}

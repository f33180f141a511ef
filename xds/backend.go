package xds

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/streamgate/streamgate/config"
)

// applyBackendKnobs sets a backend cluster's protocol, health checks,
// outlier detection and circuit breakers from its config.
func applyBackendKnobs(c *clusterv3.Cluster, b *config.Backend) error {
	if b.HTTP2 || b.ConnectionPool != nil {
		var h2 *corev3.Http2ProtocolOptions
		if b.HTTP2 {
			h2 = backendHTTP2Options()
		}
		opts, err := protocolOptions(h2, b.ConnectionPool)
		if err != nil {
			return err
		}
		c.TypedExtensionProtocolOptions = opts
	}
	if h := b.HealthCheck; h != nil {
		c.HealthChecks = []*corev3.HealthCheck{{
			Timeout:            durationpb.New(h.Timeout),
			Interval:           durationpb.New(h.Interval),
			UnhealthyThreshold: wrapperspb.UInt32(h.UnhealthyThreshold),
			HealthyThreshold:   wrapperspb.UInt32(h.HealthyThreshold),
			HealthChecker: &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: &corev3.HealthCheck_HttpHealthCheck{
				Path:            h.Path,
				CodecClientType: codec(b.HTTP2),
			}},
		}}
		if b.Protocol.IsGRPC() {
			c.HealthChecks[0].HealthChecker = grpcHealthCheck()
		}
	}
	if o := b.OutlierDetection; o != nil {
		c.OutlierDetection = &clusterv3.OutlierDetection{
			Consecutive_5Xx:                    wrapperspb.UInt32(o.Consecutive5xx),
			ConsecutiveGatewayFailure:          wrapperspb.UInt32(o.ConsecutiveGatewayFailure),
			EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(100),
			BaseEjectionTime:                   durationpb.New(o.BaseEjectionTime),
			MaxEjectionPercent:                 wrapperspb.UInt32(o.MaxEjectionPercent),
			Interval:                           durationpb.New(o.Interval),
		}
	}
	if cb := b.CircuitBreaker; cb != nil {
		t := &clusterv3.CircuitBreakers_Thresholds{Priority: corev3.RoutingPriority_DEFAULT}
		if cb.MaxConnections > 0 {
			t.MaxConnections = wrapperspb.UInt32(cb.MaxConnections)
		}
		if cb.MaxPendingRequests > 0 {
			t.MaxPendingRequests = wrapperspb.UInt32(cb.MaxPendingRequests)
		}
		if cb.MaxRequests > 0 {
			t.MaxRequests = wrapperspb.UInt32(cb.MaxRequests)
		}
		if cb.MaxRetries > 0 {
			t.MaxRetries = wrapperspb.UInt32(cb.MaxRetries)
		}
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{t}}
	}
	return nil
}

func codec(http2 bool) typev3.CodecClientType {
	if http2 {
		return typev3.CodecClientType_HTTP2
	}
	return typev3.CodecClientType_HTTP1
}

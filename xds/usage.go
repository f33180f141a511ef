package xds

import (
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

// usageTapDeferredClose is how long Envoy keeps a tap stream open after
// its request ended without the response's end (a client gone mid-stream);
// Streamgate settles the reservation when the tap stream closes.
const usageTapDeferredClose = 200 * time.Millisecond

// usageFilter is the tap's filter config. It forwards the request's
// Streamgate metadata (the tap key) with every message, and of the headers
// only those the tap reads.
func usageFilter() *extprocv3.ExternalProcessor {
	exact := func(s string) *matcherv3.StringMatcher {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
	}
	return &extprocv3.ExternalProcessor{
		GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
				ClusterName: contract.ExtProcCluster,
			}},
		},
		ObservabilityMode: true,
		StatPrefix:        "usage", // its own ext_proc stats (streams_started, ...)
		// The tap never changes the response: a tap failure must not fail it.
		FailureModeAllow:     true,
		ProcessingMode:       tapOff(),
		DeferredCloseTimeout: durationpb.New(usageTapDeferredClose),
		MetadataOptions: &extprocv3.MetadataOptions{ForwardingNamespaces: &extprocv3.MetadataOptions_MetadataNamespaces{
			Untyped: []string{contract.TapNamespace},
		}},
		// The status rides on the first body chunk: no response headers
		// message.
		ResponseAttributes: []string{contract.ResponseCodeAttribute},
		ForwardRules: &extprocv3.HeaderForwardingRules{AllowedHeaders: &matcherv3.ListStringMatcher{Patterns: []*matcherv3.StringMatcher{
			exact(":status"), exact("content-type"),
		}}},
	}
}

// tapOff is the tap's mode where a route does not turn it on: nothing is
// sent, so no stream is opened.
func tapOff() *extprocv3.ProcessingMode {
	return &extprocv3.ProcessingMode{
		RequestHeaderMode:   extprocv3.ProcessingMode_SKIP,
		ResponseHeaderMode:  extprocv3.ProcessingMode_SKIP,
		RequestBodyMode:     extprocv3.ProcessingMode_NONE,
		ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
		RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
		ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
	}
}

// usageRouteConfig turns the tap on for a backend route: the request
// headers open the tap stream as soon as the main filter has routed the
// request (so Streamgate pairs it with the request at once, and learns of
// a client that leaves before the first byte), then every response body
// chunk follows, the first with the status as an attribute. Envoy reads per-route ext_proc overrides
// from the route chosen after the main filter's answer, unlike the
// filter-chain enablement, which is fixed before any filter runs.
func usageRouteConfig(cfg *config.Config) (map[string]*anypb.Any, error) {
	if !cfg.UsageTapOn() {
		return nil, nil
	}
	on := tapOff()
	on.RequestHeaderMode = extprocv3.ProcessingMode_SEND
	on.ResponseBodyMode = extprocv3.ProcessingMode_STREAMED
	a, err := anypb.New(&extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Overrides{
		Overrides: &extprocv3.ExtProcOverrides{ProcessingMode: on},
	}})
	if err != nil {
		return nil, err
	}
	return map[string]*anypb.Any{contract.UsageFilter: a}, nil
}

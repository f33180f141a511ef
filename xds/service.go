package xds

import (
	"fmt"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	grpcalsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

// serviceProcessing is the ext_proc mode on a service's route: only the
// request headers go to Streamgate (auth, operation, scope, limits); the
// body passes unbuffered and the response never goes through ext_proc.
// Streamgate's answer adds a body phase for operations with a body rule,
// and the response trailers phase to hold a concurrency slot.
var serviceProcessing = &extprocv3.ProcessingMode{
	RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
	ResponseHeaderMode:  extprocv3.ProcessingMode_SKIP,
	RequestBodyMode:     extprocv3.ProcessingMode_NONE,
	ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
	RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
	ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
}

// serviceRoutes are the routes of the config's services, one per service,
// in config order: the path prefix (rewritten when the service says so) to
// the service's backend cluster, streams without a timeout but the idle
// one. They come before every model route, so a service path never
// reaches a model backend whatever headers it carries.
func serviceRoutes(cfg *config.Config) ([]*routev3.Route, error) {
	perRoute, err := toAny(&extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Overrides{
		Overrides: &extprocv3.ExtProcOverrides{ProcessingMode: serviceProcessing},
	}})
	if err != nil {
		return nil, fmt.Errorf("cannot encode service ext_proc override: %w", err)
	}
	routes := make([]*routev3.Route, 0, len(cfg.Services))
	for _, s := range cfg.Services {
		r := &routev3.Route{
			Name:  contract.ServiceRoutePrefix + s.Name,
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: s.PathPrefix}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: s.Backend},
				PrefixRewrite:    s.Rewrite,
				Timeout:          durationpb.New(0),
				IdleTimeout:      durationpb.New(cfg.Gateway.StreamIdleTimeout),
			}},
			TypedPerFilterConfig: map[string]*anypb.Any{contract.ExtProcFilter: perRoute},
		}
		if cfg.Limits != nil {
			r.ResponseHeadersToAdd = rateLimitHeadersToAdd()
		}
		if err := stripAmzOff(cfg, r); err != nil {
			return nil, err
		}
		routes = append(routes, r)
	}
	return routes, nil
}

// rateLimitHeadersToAdd copies the x-ratelimit-* values ext_proc put in
// the request's metadata onto the response (absent keys add nothing).
func rateLimitHeadersToAdd() []*corev3.HeaderValueOption {
	hs := make([]*corev3.HeaderValueOption, 0, len(contract.RateLimitHeaders))
	for _, h := range contract.RateLimitHeaders {
		hs = append(hs, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h, Value: meta(h)},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	return hs
}

// serviceAccessLog sends an entry for every service request Streamgate
// admitted (its metadata names the service), when it ends, to the ext_proc
// server's AccessLogService: status, duration and bytes per service,
// operation and tenant. Envoy batches entries and sends them
// asynchronously; the data path never waits.
func serviceAccessLog() (*accesslogv3.AccessLog, error) {
	a, err := toAny(&grpcalsv3.HttpGrpcAccessLogConfig{
		CommonConfig: extProcLog(contract.ServiceLog, time.Second),
	})
	if err != nil {
		return nil, fmt.Errorf("cannot encode service access log config: %w", err)
	}
	return &accesslogv3.AccessLog{
		Name: grpcAccessLogger,
		Filter: &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_MetadataFilter{
			MetadataFilter: &accesslogv3.MetadataFilter{Matcher: &matcherv3.MetadataMatcher{
				Filter: contract.MetadataNamespace,
				Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: contract.MetaService}}},
				Value:  &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}},
			}},
		}},
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: a},
	}, nil
}

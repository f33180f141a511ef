package xds

import (
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	upstreamcodecv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

// A failover chain mixing protocols (config.Config.MixesProtocols) is an
// aggregate cluster whose upstream HTTP filters run once per attempt,
// after the load balancer picked an endpoint of one of its backends.
// Envoy builds them from the route's cluster, the aggregate, never from
// the member that serves the attempt; the attempt's backend is therefore
// read from the picked endpoint's metadata (backendMetadata, which every
// endpoint of such a backend carries):
//
//  1. header_mutation removes what an earlier attempt (or the client) put
//     on the shared request headers for another backend: every x-amz-*
//     header and the credential headers. Envoy hands every attempt the
//     same header map, so attempt 2 would otherwise carry attempt 1's
//     signature.
//  2. ext_proc (Streamgate again, contract.UpstreamExtProcFilter) learns
//     the backend from contract.UpstreamAttribute and translates,
//     authorizes and signs the client's request for it
//     (extproc/upstream.go). The router keeps the client's body for
//     retries and hands each attempt a copy.
//
// The route names the backend that answered in contract.AnsweredByHeader,
// from which the main ext_proc filter translates the response. Models
// without such a chain never reach these filters: their requests cost what
// they did.

// crossCleared are the headers an attempt of a cross chain starts without:
// the credentials and fixed headers another backend of the chain takes.
// The x-amz-* headers go by prefix.
// anthropic-version stays: a Messages client's own goes to an Anthropic
// backend as it is, and a translation to Anthropic sets it.
var crossCleared = []string{"authorization", "x-api-key", "api-key", "x-goog-api-key", "openai-organization", "openai-project"}

// crossBackends reports, for every backend of a failover chain that
// mixes protocols, true.
func crossBackends(cfg *config.Config) map[string]bool {
	seen := map[string]bool{}
	for _, chain := range failoverChains(cfg) {
		if cfg.MixesProtocols(chain[0], chain[1:]) {
			for _, name := range chain {
				seen[name] = true
			}
		}
	}
	return seen
}

// backendMetadata names backend on each of its endpoints, where the
// upstream filters of a cross chain read it.
func backendMetadata(backend string) *corev3.Metadata {
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{contract.EndpointNamespace: {
		Fields: map[string]*structpb.Value{contract.EndpointBackendKey: structpb.NewStringValue(backend)},
	}}}
}

// markEndpoints names backend on every endpoint of cla (nil: none).
func markEndpoints(cla *endpointv3.ClusterLoadAssignment, backend string) {
	for _, loc := range cla.GetEndpoints() {
		for _, ep := range loc.GetLbEndpoints() {
			ep.Metadata = backendMetadata(backend)
		}
	}
}

// crossChainOptions gives the aggregate cluster c of a chain that mixes
// protocols its upstream filters.
func crossChainOptions(cfg *config.Config, c *clusterv3.Cluster) error {
	opts := &httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
		ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{},
		},
	}}
	var err error
	if opts.HttpFilters, err = crossFilters(cfg); err != nil {
		return err
	}
	a, err := toAny(opts)
	if err != nil {
		return fmt.Errorf("cannot encode protocol options of cluster %q: %w", c.Name, err)
	}
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsKey: a}
	return nil
}

// crossFilters are a cross chain's upstream HTTP filters (see above).
func crossFilters(cfg *config.Config) ([]*hcmv3.HttpFilter, error) {
	clear := []*mutationrulesv3.HeaderMutation{{Action: &mutationrulesv3.HeaderMutation_RemoveOnMatch_{
		RemoveOnMatch: &mutationrulesv3.HeaderMutation_RemoveOnMatch{KeyMatcher: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "x-amz-"},
		}},
	}}}
	for _, h := range crossCleared {
		clear = append(clear, &mutationrulesv3.HeaderMutation{Action: &mutationrulesv3.HeaderMutation_Remove{Remove: h}})
	}
	var out []*hcmv3.HttpFilter
	for _, f := range []struct {
		name string
		cfg  proto.Message
	}{
		{"streamgate.cross_headers", &headermutationv3.HeaderMutation{Mutations: &headermutationv3.Mutations{RequestMutations: clear}}},
		{contract.UpstreamExtProcFilter, upstreamExtProc(cfg)},
		{"envoy.filters.http.upstream_codec", &upstreamcodecv3.UpstreamCodec{}},
	} {
		hf, err := typed(f.name, f.cfg)
		if err != nil {
			return nil, err
		}
		out = append(out, hf)
	}
	return out, nil
}

// upstreamExtProc is the ext_proc filter of a cross chain: the request
// headers and buffered body of each attempt, nothing of the response. It may set the Host (a signed host, a hosted API's name).
// Envoy ignores an immediate response from an upstream filter, so the
// server never refuses here: whatever can be refused was refused by the
// main filter before the first attempt.
func upstreamExtProc(cfg *config.Config) *extprocv3.ExternalProcessor {
	return &extprocv3.ExternalProcessor{
		GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
				ClusterName: contract.ExtProcCluster,
			}},
		},
		ProcessingMode: &extprocv3.ProcessingMode{
			RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
			ResponseHeaderMode:  extprocv3.ProcessingMode_SKIP,
			RequestBodyMode:     extprocv3.ProcessingMode_BUFFERED,
			ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
			RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
			ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
		},
		MessageTimeout: durationpb.New(cfg.ExtProc.MessageTimeout),
		// The picked endpoint's backend; only the upstream filter asks for
		// it, so its presence also tells the server an upstream stream
		// from a client's.
		RequestAttributes: []string{contract.UpstreamAttribute},
		MutationRules:     &mutationrulesv3.HeaderMutationRules{AllowAllRouting: wrapperspb.Bool(true)},
		ForwardRules: &extprocv3.HeaderForwardingRules{AllowedHeaders: &matcherv3.ListStringMatcher{Patterns: []*matcherv3.StringMatcher{
			{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: ":method"}},
			{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: contract.HeaderPrefix}},
		}}},
	}
}

// crossRoute sends requests marked for a chain that mixes protocols to
// its aggregate cluster, retrying down the chain, and names the backend
// that answered on the response. The Host and fixed headers are each
// attempt's, set by the upstream ext_proc filter.
func crossRoute(cfg *config.Config, chain []string, retry *routev3.RetryPolicy) *routev3.Route {
	r := backendRoute(cfg, contract.FailoverCluster(chain))
	r.GetRoute().RetryPolicy = retry
	r.ResponseHeadersToAdd = append(r.ResponseHeadersToAdd, answeredBy())
	return r
}

// answeredBy is the response header naming the backend that answered,
// from the picked endpoint's metadata (empty, hence not added, for
// endpoints without it). The drop-in route (envoy/dropin/route.yaml)
// carries it too.
func answeredBy() *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: contract.AnsweredByHeader, Value: "%UPSTREAM_METADATA(" + contract.EndpointNamespace + ":" + contract.EndpointBackendKey + ")%"},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

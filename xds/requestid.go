package xds

import (
	"fmt"

	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	earlymutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

// requestIDHeader names a request in Envoy's access log, Streamgate's logs
// and traces, and upstream.
const requestIDHeader = contract.RequestIDHeader

// requestIDMutation removes, before the HTTP connection manager looks at
// the request, the headers a client must not set:
//   - x-request-id, so Envoy generates a fresh id for every request: a
//     client cannot choose the id its request is logged and traced under,
//     or collide with another request's. With gateway.trust_request_id
//     (only behind a proxy that sets the id itself) Envoy keeps the id.
//   - every x-envoy-* header (issue 21, hostile input): Envoy's own
//     internal headers (x-envoy-original-path, x-envoy-internal, retry and
//     timeout overrides) would otherwise reach the backend as the client
//     wrote them. Envoy adds its own after this point.
//   - the endpoint picking headers (contract.DestinationEndpointKey and
//     DestinationServedKey): only Streamgate and Envoy set them.
func requestIDMutation(cfg *config.Config) ([]*corev3.TypedExtensionConfig, error) {
	mutations := []*mutationv3.HeaderMutation{
		{Action: &mutationv3.HeaderMutation_RemoveOnMatch_{RemoveOnMatch: &mutationv3.HeaderMutation_RemoveOnMatch{
			KeyMatcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "x-envoy-"}},
		}}},
		{Action: &mutationv3.HeaderMutation_Remove{Remove: contract.DestinationEndpointKey}},
		{Action: &mutationv3.HeaderMutation_Remove{Remove: contract.DestinationServedKey}},
	}
	if !cfg.Gateway.TrustRequestID {
		mutations = append(mutations, &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Remove{Remove: requestIDHeader}})
	}
	a, err := toAny(&earlymutationv3.HeaderMutation{Mutations: mutations})
	if err != nil {
		return nil, fmt.Errorf("cannot encode the client header mutation: %w", err)
	}
	return []*corev3.TypedExtensionConfig{{
		Name:        earlyHeaderMutation,
		TypedConfig: a,
	}}, nil
}

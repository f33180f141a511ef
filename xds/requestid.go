package xds

import (
	"fmt"

	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	earlymutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

// requestIDHeader names a request in Envoy's access log, Streamgate's logs
// and traces, and upstream.
const requestIDHeader = contract.RequestIDHeader

// requestIDMutation removes the client's x-request-id before the HTTP
// connection manager looks at it, so Envoy generates a fresh id for every
// request: a client cannot choose the id its request is logged and traced
// under, or collide with another request's. With gateway.trust_request_id
// (only behind a proxy that sets the id itself) it returns nil and Envoy
// keeps the id it receives.
func requestIDMutation(cfg *config.Config) ([]*corev3.TypedExtensionConfig, error) {
	if cfg.Gateway.TrustRequestID {
		return nil, nil
	}
	a, err := toAny(&earlymutationv3.HeaderMutation{Mutations: []*mutationv3.HeaderMutation{{
		Action: &mutationv3.HeaderMutation_Remove{Remove: requestIDHeader},
	}}})
	if err != nil {
		return nil, fmt.Errorf("cannot encode the request id mutation: %w", err)
	}
	return []*corev3.TypedExtensionConfig{{
		Name:        earlyHeaderMutation,
		TypedConfig: a,
	}}, nil
}

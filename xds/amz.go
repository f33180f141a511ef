package xds

import (
	"fmt"

	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/streamgate/streamgate/config"
)

// stripAmzFilter names the listener filter that removes a client's x-amz-*
// headers.
const stripAmzFilter = "streamgate.strip_amz"

// hasBedrock reports whether cfg has a backend whose requests the gateway
// signs with SigV4.
func hasBedrock(cfg *config.Config) bool {
	for i := range cfg.Backends {
		if cfg.Backends[i].Protocol == config.ProtocolBedrock {
			return true
		}
	}
	return false
}

// stripAmz is the first filter of the listener of a config with a Bedrock
// backend: it removes every x-amz-* header a client sent, before ext_proc
// signs. A client's x-amz-security-token (or any x-amz-* header the
// signature does not cover) would otherwise reach Bedrock beside the
// gateway's own signature, which AWS refuses, or worse, mixes a client's
// session into the gateway's request. ext_proc cannot remove what it does
// not see (its forward rules), and a route's request_headers_to_remove
// runs after ext_proc, so it would remove the signature too. ext_proc's
// own signature headers are set after this filter ran; it also overwrites
// the client's authorization on signed routes (translation.go). Service
// routes (services[], proxied as they are) turn it off (stripAmzOff).
func stripAmz(cfg *config.Config) (*hcmv3.HttpFilter, error) {
	if !hasBedrock(cfg) {
		return nil, nil
	}
	return typed(stripAmzFilter, &headermutationv3.HeaderMutation{Mutations: &headermutationv3.Mutations{
		RequestMutations: []*mutationrulesv3.HeaderMutation{{Action: &mutationrulesv3.HeaderMutation_RemoveOnMatch_{
			RemoveOnMatch: &mutationrulesv3.HeaderMutation_RemoveOnMatch{KeyMatcher: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "x-amz-"},
			}},
		}}},
	}})
}

// stripAmzOff turns stripAmz off on route r (a service's), where it is in
// the listener.
func stripAmzOff(cfg *config.Config, r *routev3.Route) error {
	if !hasBedrock(cfg) {
		return nil
	}
	off, err := toAny(&routev3.FilterConfig{Disabled: true})
	if err != nil {
		return fmt.Errorf("cannot encode filter config: %w", err)
	}
	if r.TypedPerFilterConfig == nil {
		r.TypedPerFilterConfig = map[string]*anypb.Any{}
	}
	r.TypedPerFilterConfig[stripAmzFilter] = off
	return nil
}

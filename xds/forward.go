package xds

import (
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

// forwardRules lets only the headers the ext_proc server reads into the
// main filter's messages (contract.ForwardedHeaders for cfg, and every
// contract.HeaderPrefix header, which ext_proc removes on sight). Envoy
// then encodes and sends a handful of headers per message instead of all
// of a client's; header mutations are not affected (ext_proc may set or
// remove any header). The drop-in filter (envoy/dropin) forwards every
// header instead: it is written once for any config.
func forwardRules(cfg *config.Config) *extprocv3.HeaderForwardingRules {
	tenant := ""
	if cfg.Limits != nil {
		tenant = cfg.Limits.TenantHeader
	}
	names := contract.ForwardedHeaders(tenant, cfg.Telemetry.Tracing != nil)
	patterns := make([]*matcherv3.StringMatcher, 0, len(names)+1)
	for _, n := range names {
		patterns = append(patterns, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: n}})
	}
	patterns = append(patterns, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: contract.HeaderPrefix}})
	return &extprocv3.HeaderForwardingRules{AllowedHeaders: &matcherv3.ListStringMatcher{Patterns: patterns}}
}

package xds

import (
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	leastrequestv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/least_request/v3"
	overridehostv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/override_host/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

// Envoy extension names of the picking cluster's load balancing policy.
const (
	overrideHostPolicy = "envoy.load_balancing_policies.override_host"
	leastRequestPolicy = "envoy.load_balancing_policies.least_request"
)

// pickingRetryOn are the failures after which Envoy tries the next endpoint
// of a pick, always before the first response byte: the endpoint could not
// be reached or reset the stream, or it answered 503 or 429 (overloaded,
// not ready, queue full) or 502 or 504 (a proxy in front of the server
// lost it), which another server may not have done. 500 and 501 are left
// alone: a model server's 500 is usually the request's own fault and would
// fail again on every fallback, multiplying the load.
const pickingRetryOn = "connect-failure,refused-stream,reset,retriable-status-codes"

// pickingRetryCodes are the retriable-status-codes of pickingRetryOn.
var pickingRetryCodes = []uint32{502, 503, 504, 429}

// pickingPolicy makes Envoy send each request of a backend with picking to
// the endpoint ext_proc chose: the override-host policy reads the list
// "IP:port,IP:port,..." from the request's dynamic metadata
// (contract.LBNamespace / contract.DestinationEndpointKey), tries its first
// entry, each retry the next one, and uses LEAST_REQUEST when the list is
// missing or used up. Only metadata is read, never the request header of
// that name, so a client cannot steer its request to an endpoint. The
// endpoint actually used is written back under contract.DestinationServedKey.
func pickingPolicy() (*clusterv3.LoadBalancingPolicy, error) {
	lr, err := toAny(&leastrequestv3.LeastRequest{})
	if err != nil {
		return nil, fmt.Errorf("cannot encode least request policy: %w", err)
	}
	key := func(k string) *metadatav3.MetadataKey {
		return &metadatav3.MetadataKey{Key: contract.LBNamespace, Path: []*metadatav3.MetadataKey_PathSegment{{
			Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: k},
		}}}
	}
	oh, err := toAny(&overridehostv3.OverrideHost{
		OverrideHostSources: []*overridehostv3.OverrideHost_OverrideHostSource{{Metadata: key(contract.DestinationEndpointKey)}},
		SelectedHostKey:     key(contract.DestinationServedKey),
		FallbackPolicy: &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{{
			TypedExtensionConfig: &corev3.TypedExtensionConfig{Name: leastRequestPolicy, TypedConfig: lr},
		}}},
	})
	if err != nil {
		return nil, fmt.Errorf("cannot encode override host policy: %w", err)
	}
	return &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{{
		TypedExtensionConfig: &corev3.TypedExtensionConfig{Name: overrideHostPolicy, TypedConfig: oh},
	}}}, nil
}

// applyPicking gives the cluster of a backend with picking the override-host
// policy; its endpoints, health checks and outlier detection stay as they
// are. Its retries share a budget like a failover chain's, so that an
// endpoint dying under load has all its requests retried, not only the
// three Envoy allows at once by default (unless max_retries is configured).
func applyPicking(c *clusterv3.Cluster, b *config.Backend, budgetPercent float64) error {
	if b.Picking == nil {
		return nil
	}
	lb, err := pickingPolicy()
	if err != nil {
		return err
	}
	c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN // ignored: load_balancing_policy wins
	c.LoadBalancingPolicy = lb
	if c.CircuitBreakers == nil {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{}}}
	}
	if t := c.CircuitBreakers.Thresholds[0]; t.MaxRetries == nil {
		t.RetryBudget = &clusterv3.CircuitBreakers_Thresholds_RetryBudget{
			BudgetPercent:       &typev3.Percent{Value: budgetPercent},
			MinRetryConcurrency: wrapperspb.UInt32(10),
		}
	}
	return nil
}

// pickingRetry retries a request of a backend with picking on the next
// endpoint of its pick (the override-host policy moves down the list on
// each attempt), at most fallbacks times.
// Once the list is used up the LEAST_REQUEST fallback chooses, avoiding the
// hosts already tried. No back-off to speak of: the next attempt goes to
// another server.
func pickingRetry(fallbacks int) (*routev3.RetryPolicy, error) {
	hosts, err := toAny(&previoushostsv3.PreviousHostsPredicate{})
	if err != nil {
		return nil, fmt.Errorf("cannot encode retry host predicate: %w", err)
	}
	return &routev3.RetryPolicy{
		RetryOn:              pickingRetryOn,
		RetriableStatusCodes: pickingRetryCodes,
		NumRetries:           wrapperspb.UInt32(uint32(fallbacks)),
		RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
			Name:       previousHostsPredicate,
			ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: hosts},
		}},
		HostSelectionRetryMaxAttempts: 3,
		RetryBackOff:                  &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)},
	}, nil
}

// applyPickingRoute gives the route of a backend with picking its retries
// and drops any client-sent destination header on the way upstream (Envoy
// never reads it: the policy reads metadata only).
func applyPickingRoute(r *routev3.Route, b *config.Backend) error {
	if b == nil || b.Picking == nil {
		return nil
	}
	retry, err := pickingRetry(b.Picking.Fallbacks)
	if err != nil {
		return err
	}
	r.GetRoute().RetryPolicy = retry
	r.RequestHeadersToRemove = append(r.RequestHeadersToRemove, contract.DestinationEndpointKey)
	return nil
}

package xds

import (
	"fmt"
	"math"
	"sort"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	aggregatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/clusters/aggregate/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	previousprioritiesv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

// failoverChains lists every distinct chain of length > 1 in cfg, sorted.
func failoverChains(cfg *config.Config) [][]string {
	seen := map[string][]string{}
	for i := range cfg.Models {
		m := &cfg.Models[i]
		for j := range m.Versions {
			if chain := contract.FailoverChain(m.Versions[j].Backend, m.Fallbacks); len(chain) > 1 {
				seen[contract.FailoverCluster(chain)] = chain
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([][]string, 0, len(names))
	for _, n := range names {
		out = append(out, seen[n])
	}
	return out
}

// failoverCluster is an aggregate cluster over a chain: each backend is one
// priority level, so health-based failover follows the chain order too.
// Its retry budget bounds how many retries may run at once.
func failoverCluster(cfg *config.Config, chain []string) (*clusterv3.Cluster, error) {
	budgetPercent := cfg.Gateway.RetryBudgetPercent
	agg, err := toAny(&aggregatev3.ClusterConfig{Clusters: chain})
	if err != nil {
		return nil, fmt.Errorf("cannot encode aggregate cluster: %w", err)
	}
	return &clusterv3.Cluster{
		Name:           contract.FailoverCluster(chain),
		ConnectTimeout: durationpb.New(config.DefaultConnectTimeout),
		LbPolicy:       clusterv3.Cluster_CLUSTER_PROVIDED,
		ClusterDiscoveryType: &clusterv3.Cluster_ClusterType{ClusterType: &clusterv3.Cluster_CustomClusterType{
			Name: aggregateCluster, TypedConfig: agg,
		}},
		CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{
				BudgetPercent:       &typev3.Percent{Value: budgetPercent},
				MinRetryConcurrency: wrapperspb.UInt32(failoverRetryFloor(cfg.Backend(chain[0]), budgetPercent)),
			},
		}}},
	}, nil
}

// failoverRetryFloor is the chain's min_retry_concurrency: budgetPercent
// of its first backend's max_requests (Envoy's default 1024), at least 10.
// Envoy counts a chain's requests on its backends' clusters, never on the
// aggregate cluster whose budget applies (envoyproxy/envoy#17412), so the
// budget's share of active requests is always 0 and this floor is the
// whole budget: without it only 10 requests could move on at once.
func failoverRetryFloor(primary *config.Backend, budgetPercent float64) uint32 {
	maxRequests := uint32(1024)
	if primary != nil && primary.CircuitBreaker != nil && primary.CircuitBreaker.MaxRequests > 0 {
		maxRequests = primary.CircuitBreaker.MaxRequests
	}
	return max(10, uint32(math.Ceil(budgetPercent/100*float64(maxRequests))))
}

// failoverRetry retries a request on the next backend of its chain when
// the current one fails before the response starts: Envoy never retries
// once it has sent response bytes to the client.
func failoverRetry(retries int) (*routev3.RetryPolicy, error) {
	prio, err := toAny(&previousprioritiesv3.PreviousPrioritiesConfig{UpdateFrequency: 1})
	if err != nil {
		return nil, fmt.Errorf("cannot encode retry priority: %w", err)
	}
	hosts, err := toAny(&previoushostsv3.PreviousHostsPredicate{})
	if err != nil {
		return nil, fmt.Errorf("cannot encode retry host predicate: %w", err)
	}
	return &routev3.RetryPolicy{
		RetryOn:              "connect-failure,refused-stream,reset-before-request,gateway-error,5xx,retriable-status-codes",
		RetriableStatusCodes: []uint32{429},
		NumRetries:           wrapperspb.UInt32(uint32(retries)),
		RetryPriority: &routev3.RetryPolicy_RetryPriority{
			Name:       previousPrioritiesRetry,
			ConfigType: &routev3.RetryPolicy_RetryPriority_TypedConfig{TypedConfig: prio},
		},
		RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
			Name:       previousHostsPredicate,
			ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: hosts},
		}},
		HostSelectionRetryMaxAttempts: 3,
		RetryBackOff: &routev3.RetryPolicy_RetryBackOff{
			BaseInterval: durationpb.New(10e6), // 10 ms: the next backend is a different server
		},
	}, nil
}

// failoverRoute sends requests marked for a chain's cluster to it, retrying
// down the chain.
func failoverRoute(cfg *config.Config, chain []string) (*routev3.Route, error) {
	retry, err := failoverRetry(len(chain) - 1)
	if err != nil {
		return nil, err
	}
	if cfg.MixesProtocols(chain[0], chain[1:]) {
		return crossRoute(cfg, chain, retry), nil
	}
	r := backendRoute(cfg, contract.FailoverCluster(chain))
	// The config allows a chain only of backends taking the same fixed
	// headers and, when signed, one Host. TLS backends of different server
	// names get the name of the endpoint Envoy picked.
	rewriteHost(r, cfg.Backend(chain[0]))
	for _, name := range chain[1:] {
		if b := cfg.Backend(name); b != nil && b.UpstreamHost() != cfg.Backend(chain[0]).UpstreamHost() {
			r.GetRoute().HostRewriteSpecifier = &routev3.RouteAction_AutoHostRewrite{AutoHostRewrite: wrapperspb.Bool(true)}
			break
		}
	}
	r.GetRoute().RetryPolicy = retry
	return r, nil
}

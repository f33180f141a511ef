package xds

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	leastrequestv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/least_request/v3"
	overridehostv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/override_host/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/contract"
)

const pickingBackends = `
backends:
  - name: gpu
    protocol: openai
    endpoints: [10.0.0.1:8000, 10.0.0.2:8000, 10.0.0.3:8000]
    picking: {metrics: none, fallbacks: 2}
    health_check: {path: /health}
    outlier_detection: {}
  - name: cpu
    protocol: openai
    endpoints: [10.0.1.1:8000]
models:
  - name: m
    backend: gpu
    fallbacks: [cpu]
  - name: c
    backend: cpu
`

func pickingSnapshot(t *testing.T) *cachev3.Snapshot {
	t.Helper()
	snap, err := Snapshot(parse(t, pickingBackends), AllInOne)
	require.NoError(t, err)
	return snap
}

func TestPickingClusterUsesOverrideHostFromMetadataOnly(t *testing.T) {
	clusters := pickingSnapshot(t).GetResources(resourcev3.ClusterType)
	gpu := clusters["gpu"].(*clusterv3.Cluster)
	pols := gpu.GetLoadBalancingPolicy().GetPolicies()
	require.Len(t, pols, 1)
	assert.Equal(t, "envoy.load_balancing_policies.override_host", pols[0].GetTypedExtensionConfig().GetName())
	var oh overridehostv3.OverrideHost
	require.NoError(t, pols[0].GetTypedExtensionConfig().GetTypedConfig().UnmarshalTo(&oh))

	require.Len(t, oh.GetOverrideHostSources(), 1, "metadata only: a client header must not steer")
	src := oh.GetOverrideHostSources()[0]
	assert.Empty(t, src.GetHeader())
	assert.Equal(t, contract.LBNamespace, src.GetMetadata().GetKey())
	require.Len(t, src.GetMetadata().GetPath(), 1)
	assert.Equal(t, contract.DestinationEndpointKey, src.GetMetadata().GetPath()[0].GetKey())
	assert.Equal(t, contract.DestinationServedKey, oh.GetSelectedHostKey().GetPath()[0].GetKey())

	fb := oh.GetFallbackPolicy().GetPolicies()
	require.Len(t, fb, 1)
	assert.Equal(t, "envoy.load_balancing_policies.least_request", fb[0].GetTypedExtensionConfig().GetName())
	require.NoError(t, fb[0].GetTypedExtensionConfig().GetTypedConfig().UnmarshalTo(&leastrequestv3.LeastRequest{}))

	assert.Equal(t, clusterv3.Cluster_EDS, gpu.GetType(), "the endpoints stay the cluster's own")
	assert.NotEmpty(t, gpu.GetHealthChecks(), "health checks stay")
	assert.NotNil(t, gpu.GetOutlierDetection(), "outlier detection stays")
	assert.NotNil(t, gpu.GetCircuitBreakers().GetThresholds()[0].GetRetryBudget(), "retries over the picked endpoints are budgeted")

	cpu := clusters["cpu"].(*clusterv3.Cluster)
	assert.Nil(t, cpu.GetLoadBalancingPolicy(), "a backend without picking keeps LEAST_REQUEST")
	assert.Equal(t, clusterv3.Cluster_LEAST_REQUEST, cpu.GetLbPolicy())
}

func routeTo(t *testing.T, snap *cachev3.Snapshot, cluster string) *routev3.Route {
	t.Helper()
	rc := snap.GetResources(resourcev3.RouteType)[RouteName].(*routev3.RouteConfiguration)
	for _, r := range rc.GetVirtualHosts()[0].GetRoutes() {
		if r.GetRoute().GetCluster() == cluster {
			return r
		}
	}
	t.Fatalf("no route to %s", cluster)
	return nil
}

func TestPickingRouteRetriesTheFallbackEndpoints(t *testing.T) {
	snap := pickingSnapshot(t)
	gpu := routeTo(t, snap, "gpu")
	rp := gpu.GetRoute().GetRetryPolicy()
	require.NotNil(t, rp)
	assert.EqualValues(t, 2, rp.GetNumRetries().GetValue(), "one retry per fallback endpoint")
	assert.Equal(t, "connect-failure,refused-stream,reset,retriable-status-codes", rp.GetRetryOn())
	assert.Equal(t, []uint32{502, 503, 504, 429}, rp.GetRetriableStatusCodes())
	assert.Contains(t, gpu.GetRequestHeadersToRemove(), contract.DestinationEndpointKey)

	assert.Nil(t, routeTo(t, snap, "cpu").GetRoute().GetRetryPolicy(), "no retries for a backend without picking")
	assert.NotContains(t, routeTo(t, snap, "cpu").GetRequestHeadersToRemove(), contract.DestinationEndpointKey)

	chain := routeTo(t, snap, "streamgate_failover_gpu+cpu")
	assert.Equal(t, "envoy.retry_priorities.previous_priorities", chain.GetRoute().GetRetryPolicy().GetRetryPriority().GetName(),
		"a chain starting with a picking backend still fails over down the chain")
	assert.Contains(t, chain.GetRequestHeadersToRemove(), contract.DestinationEndpointKey)
}

func TestExtProcFilterAcceptsLBMetadata(t *testing.T) {
	l := pickingSnapshot(t).GetResources(resourcev3.ListenerType)[ListenerName].(*listenerv3.Listener)
	var hcm hcmv3.HttpConnectionManager
	require.NoError(t, l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm))
	var ep extprocv3.ExternalProcessor
	require.NoError(t, hcm.GetHttpFilters()[0].GetTypedConfig().UnmarshalTo(&ep))
	assert.Contains(t, ep.GetMetadataOptions().GetReceivingNamespaces().GetUntyped(), contract.LBNamespace,
		"Envoy drops metadata in namespaces it is not told to receive")
}

func TestPickingRetryBudgetYieldsToConfiguredMaxRetries(t *testing.T) {
	tests := map[string]struct {
		breaker    string
		wantBudget bool
		wantMax    uint32
	}{
		"no circuit breaker":           {wantBudget: true},
		"circuit breaker without cap":  {breaker: "    circuit_breaker: {max_requests: 50}\n", wantBudget: true},
		"configured max_retries holds": {breaker: "    circuit_breaker: {max_retries: 7}\n", wantMax: 7},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			src := "backends:\n  - name: gpu\n    protocol: openai\n    endpoints: [10.0.0.1:8000]\n    picking: {metrics: none}\n" + tc.breaker +
				"models:\n  - name: m\n    backend: gpu\n"
			snap, err := Snapshot(parse(t, src), AllInOne)
			require.NoError(t, err)
			th := snap.GetResources(resourcev3.ClusterType)["gpu"].(*clusterv3.Cluster).GetCircuitBreakers().GetThresholds()
			require.Len(t, th, 1)
			assert.Equal(t, tc.wantBudget, th[0].GetRetryBudget() != nil)
			assert.Equal(t, tc.wantMax, th[0].GetMaxRetries().GetValue())
		})
	}
}

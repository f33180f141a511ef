package xds

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

const twoBackends = `
gateway:
  listen: 127.0.0.1:10000
  stream_idle_timeout: 90s
backends:
  - name: zeta
    protocol: openai
    endpoints: [10.0.0.1:8000, 10.0.0.2:8000]
  - name: alpha
    protocol: openai
    endpoints: [vllm.internal:8000]
    tls: {sni: vllm.example}
models:
  - name: m
    backend: zeta
`

func parse(t *testing.T, src string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(src))
	require.NoError(t, err)
	return cfg
}

func TestSnapshotAllInOne(t *testing.T) {
	snap, err := Snapshot(parse(t, twoBackends), AllInOne)
	require.NoError(t, err)

	clusters := snap.GetResources(resourcev3.ClusterType)
	require.Len(t, clusters, 4)
	require.Contains(t, clusters, contract.ExtProcCluster)
	require.Contains(t, clusters, contract.UnroutedCluster)

	zeta := clusters["zeta"].(*clusterv3.Cluster)
	assert.Equal(t, clusterv3.Cluster_EDS, zeta.GetType(), "IP endpoints go through EDS")
	alpha := clusters["alpha"].(*clusterv3.Cluster)
	assert.Equal(t, clusterv3.Cluster_STRICT_DNS, alpha.GetType(), "DNS endpoints resolve in Envoy")
	var tc tlsv3.UpstreamTlsContext
	require.NoError(t, alpha.GetTransportSocket().GetTypedConfig().UnmarshalTo(&tc))
	assert.Equal(t, "vllm.example", tc.GetSni())

	eps := snap.GetResources(resourcev3.EndpointType)
	require.Len(t, eps, 1, "only EDS clusters get a load assignment resource")
	require.Contains(t, eps, "zeta")

	rc := snap.GetResources(resourcev3.RouteType)[RouteName].(*routev3.RouteConfiguration)
	routes := rc.GetVirtualHosts()[0].GetRoutes()
	require.Len(t, routes, 3+len(contract.UploadPaths))
	assert.Equal(t, "alpha", routes[0].GetRoute().GetCluster(), "backends are sorted by name")
	assert.Equal(t, contract.BackendHeader, routes[0].GetMatch().GetHeaders()[0].GetName())
	assert.Equal(t, "alpha", routes[0].GetMatch().GetHeaders()[0].GetStringMatch().GetExact())
	assert.Zero(t, routes[0].GetRoute().GetTimeout().AsDuration(), "streams have no overall timeout")
	assert.Equal(t, "1m30s", routes[0].GetRoute().GetIdleTimeout().AsDuration().String())
	last := routes[len(routes)-1]
	assert.Equal(t, contract.UnroutedCluster, last.GetRoute().GetCluster(), "catch-all is last")
	assert.Equal(t, "/", last.GetMatch().GetPrefix())
	assert.EqualValues(t, config.DefaultMaxBodyBytes, rc.GetVirtualHosts()[0].GetRequestBodyBufferLimit().GetValue())
	// Uploads match their own route at the stream's start, which carries
	// their body cap.
	up := routes[2]
	assert.Equal(t, contract.UploadPaths[0], up.GetMatch().GetPath())
	assert.Equal(t, contract.UnroutedCluster, up.GetRoute().GetCluster())
	assert.EqualValues(t, config.DefaultMaxUploadBytes, up.GetRequestBodyBufferLimit().GetValue())

	l := snap.GetResources(resourcev3.ListenerType)[ListenerName].(*listenerv3.Listener)
	assert.EqualValues(t, 10000, l.GetAddress().GetSocketAddress().GetPortValue())
}

func TestSnapshotDropInHasOnlyModelClusters(t *testing.T) {
	snap, err := Snapshot(parse(t, twoBackends), DropIn)
	require.NoError(t, err)
	clusters := snap.GetResources(resourcev3.ClusterType)
	assert.Len(t, clusters, 2)
	assert.NotContains(t, clusters, contract.ExtProcCluster)
	assert.Empty(t, snap.GetResources(resourcev3.ListenerType))
	assert.Empty(t, snap.GetResources(resourcev3.RouteType))
}

func TestSnapshotVersionFollowsContent(t *testing.T) {
	a, err := Snapshot(parse(t, twoBackends), AllInOne)
	require.NoError(t, err)
	b, err := Snapshot(parse(t, twoBackends), AllInOne)
	require.NoError(t, err)
	assert.Equal(t, a.GetVersion(resourcev3.ClusterType), b.GetVersion(resourcev3.ClusterType), "same config, same version")

	changed := parse(t, twoBackends)
	changed.Backends[0].Endpoints = append(changed.Backends[0].Endpoints, config.Endpoint{Address: "10.0.0.3:8000", Weight: 1})
	c, err := Snapshot(changed, AllInOne)
	require.NoError(t, err)
	assert.NotEqual(t, a.GetVersion(resourcev3.EndpointType), c.GetVersion(resourcev3.EndpointType))
	assert.Equal(t, a.GetVersion(resourcev3.ClusterType), c.GetVersion(resourcev3.ClusterType), "EDS endpoint churn leaves clusters alone")
}

func TestSnapshotVersionsArePerType(t *testing.T) {
	a, err := Snapshot(parse(t, twoBackends), AllInOne)
	require.NoError(t, err)
	changed := parse(t, twoBackends)
	changed.Backends[0].Endpoints = append(changed.Backends[0].Endpoints, config.Endpoint{Address: "10.0.0.3:8000", Weight: 1})
	b, err := Snapshot(changed, AllInOne)
	require.NoError(t, err)
	assert.Equal(t, a.GetVersion(resourcev3.ListenerType), b.GetVersion(resourcev3.ListenerType), "listener untouched by an endpoint change")
	assert.NotEqual(t, a.GetVersion(resourcev3.EndpointType), b.GetVersion(resourcev3.EndpointType))
}

func TestBackendKnobs(t *testing.T) {
	cfg := parse(t, `
backends:
  - name: tuned
    protocol: openai
    http2: true
    endpoints:
      - 10.0.0.1:8000
      - {address: "10.0.0.2:8000", weight: 3}
    health_check: {path: /ready, interval: 2s}
    outlier_detection: {consecutive_5xx: 2}
    circuit_breaker: {max_requests: 64, max_pending_requests: 8}
    connection_pool: {idle_timeout: 10m}
`)
	snap, err := Snapshot(cfg, DropIn)
	require.NoError(t, err)
	c := snap.GetResources(resourcev3.ClusterType)["tuned"].(*clusterv3.Cluster)
	require.Len(t, c.GetHealthChecks(), 1)
	hc := c.GetHealthChecks()[0]
	assert.Equal(t, "/ready", hc.GetHttpHealthCheck().GetPath())
	assert.Equal(t, "2s", hc.GetInterval().AsDuration().String())
	assert.Equal(t, "1s", hc.GetTimeout().AsDuration().String(), "default timeout")
	assert.EqualValues(t, 2, c.GetOutlierDetection().GetConsecutive_5Xx().GetValue())
	assert.Equal(t, "30s", c.GetOutlierDetection().GetBaseEjectionTime().AsDuration().String())
	th := c.GetCircuitBreakers().GetThresholds()[0]
	assert.EqualValues(t, 64, th.GetMaxRequests().GetValue())
	assert.EqualValues(t, 8, th.GetMaxPendingRequests().GetValue())
	assert.Nil(t, th.GetMaxConnections(), "unset limits keep Envoy's default")

	var po httpv3.HttpProtocolOptions
	require.NoError(t, c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].UnmarshalTo(&po))
	assert.NotNil(t, po.GetExplicitHttpConfig().GetHttp2ProtocolOptions())
	assert.Equal(t, "10m0s", po.GetCommonHttpProtocolOptions().GetIdleTimeout().AsDuration().String())

	cla := snap.GetResources(resourcev3.EndpointType)["tuned"].(*endpointv3.ClusterLoadAssignment)
	eps := cla.GetEndpoints()[0].GetLbEndpoints()
	require.Len(t, eps, 2)
	assert.EqualValues(t, 1, eps[0].GetLoadBalancingWeight().GetValue())
	assert.EqualValues(t, 3, eps[1].GetLoadBalancingWeight().GetValue())
}

func TestEndpointObjectIsStrict(t *testing.T) {
	_, err := config.Parse("t.yaml", []byte("backends:\n  - name: a\n    protocol: openai\n    endpoints:\n      - {address: \"10.0.0.1:1\", wieght: 2}\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "wieght")
}

func TestFailoverChains(t *testing.T) {
	cfg := parse(t, `
backends:
  - {name: a, protocol: openai, endpoints: ["10.0.0.1:1"]}
  - {name: b, protocol: openai, endpoints: ["10.0.0.2:1"]}
  - {name: c, protocol: openai, endpoints: ["10.0.0.3:1"]}
models:
  - name: m
    versions:
      - {name: v1, backend: a, weight: 1}
      - {name: v2, backend: b, weight: 1}
    fallbacks: [b, c]
  - name: plain
    backend: c
`)
	snap, err := Snapshot(cfg, AllInOne)
	require.NoError(t, err)
	clusters := snap.GetResources(resourcev3.ClusterType)
	require.Contains(t, clusters, "streamgate_failover_a+b+c")
	require.Contains(t, clusters, "streamgate_failover_b+c", "a version's own backend is not repeated in its chain")
	agg := clusters["streamgate_failover_a+b+c"].(*clusterv3.Cluster)
	assert.Equal(t, "envoy.clusters.aggregate", agg.GetClusterType().GetName())
	assert.InDelta(t, 100, agg.GetCircuitBreakers().GetThresholds()[0].GetRetryBudget().GetBudgetPercent().GetValue(), 0)
	assert.EqualValues(t, 1024, agg.GetCircuitBreakers().GetThresholds()[0].GetRetryBudget().GetMinRetryConcurrency().GetValue(),
		"Envoy counts no active requests on an aggregate cluster: the floor is the budget (100% of the primary's max_requests)")

	rc := snap.GetResources(resourcev3.RouteType)[RouteName].(*routev3.RouteConfiguration)
	var found *routev3.Route
	for _, r := range rc.GetVirtualHosts()[0].GetRoutes() {
		if r.GetRoute().GetCluster() == "streamgate_failover_a+b+c" {
			found = r
		}
	}
	require.NotNil(t, found)
	rp := found.GetRoute().GetRetryPolicy()
	assert.EqualValues(t, 2, rp.GetNumRetries().GetValue(), "one retry per fallback")
	assert.Contains(t, rp.GetRetryOn(), "connect-failure")
	assert.Contains(t, rp.GetRetryOn(), "5xx")
	assert.Equal(t, []uint32{429}, rp.GetRetriableStatusCodes())
	assert.Equal(t, "envoy.retry_priorities.previous_priorities", rp.GetRetryPriority().GetName())
}

func TestExtProcClusterIsNotCappedAtEnvoyDefaults(t *testing.T) {
	c, err := extProcCluster("127.0.0.1:50051")
	require.NoError(t, err)
	th := c.GetCircuitBreakers().GetThresholds()
	require.Len(t, th, 1)
	assert.Greater(t, th[0].GetMaxRequests().GetValue(), uint32(100000), "one ext_proc stream per limited or translated request")
}

package xds

import (
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

const staticTestConfig = `gateway:
  listen: 127.0.0.1:10000
  max_request_body_bytes: 1048576
envoy:
  admin: 127.0.0.1:9901
backends:
  - name: bench
    protocol: openai
    endpoints: [127.0.0.1:18080]
models:
  - name: bench-model
    backend: bench
`

func TestStaticBootstrap(t *testing.T) {
	cfg, err := config.Parse("static.yaml", []byte(staticTestConfig))
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		plain    bool
		filters  []string
		clusters []string
	}{
		"with ext_proc": {false, []string{"envoy.filters.http.ext_proc", "envoy.filters.http.grpc_stats", "envoy.filters.http.router"}, []string{"bench", contract.ExtProcCluster, contract.UnroutedCluster}},
		"plain":         {true, []string{"envoy.filters.http.router"}, []string{"bench", contract.UnroutedCluster}},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := StaticBootstrap(cfg, StaticOptions{Plain: tc.plain})
			require.NoError(t, err)
			var b bootstrapv3.Bootstrap
			require.NoError(t, protojson.Unmarshal(out, &b))
			assert.Equal(t, uint32(9901), b.GetAdmin().GetAddress().GetSocketAddress().GetPortValue())

			require.Len(t, b.GetStaticResources().GetListeners(), 1)
			l := b.GetStaticResources().GetListeners()[0]
			assert.Equal(t, uint32(10000), l.GetAddress().GetSocketAddress().GetPortValue())
			hcm := &hcmv3.HttpConnectionManager{}
			require.NoError(t, l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm))
			var filters []string
			for _, f := range hcm.GetHttpFilters() {
				filters = append(filters, f.GetName())
			}
			assert.Equal(t, tc.filters, filters)
			for _, al := range hcm.GetAccessLog() {
				assert.False(t, tc.plain && al.GetName() == grpcAccessLogger, "plain Envoy has no ext_proc cluster to send gRPC access logs to")
			}
			rc := hcm.GetRouteConfig()
			require.NotNil(t, rc, "routes must be inlined, not fetched over RDS")
			assert.Nil(t, hcm.GetRds())
			assert.Equal(t, uint64(1048576), rc.GetVirtualHosts()[0].GetRequestBodyBufferLimit().GetValue())
			assert.Equal(t, "bench", rc.GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetCluster())

			var clusters []string
			for _, c := range b.GetStaticResources().GetClusters() {
				clusters = append(clusters, c.GetName())
				if c.GetName() == "bench" {
					assert.Equal(t, clusterv3.Cluster_STATIC, c.GetType())
					assert.Nil(t, c.GetEdsClusterConfig())
					assert.Equal(t, clusterv3.Cluster_LEAST_REQUEST, c.GetLbPolicy())
					ep := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
					assert.Equal(t, uint32(18080), ep.GetPortValue())
				}
			}
			assert.ElementsMatch(t, tc.clusters, clusters)
		})
	}
}

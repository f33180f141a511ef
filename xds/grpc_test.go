package xds

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const grpcBackend = `
backends:
  - name: triton
    protocol: kserve-v2-grpc
    endpoints: [10.0.0.7:8001]
    health_check: {}
  - name: vllm
    protocol: openai
    endpoints: [10.0.0.1:8000]
models:
  - name: whisper
    backend: triton
`

func TestGRPCBackendCluster(t *testing.T) {
	snap, err := Snapshot(parse(t, grpcBackend), AllInOne)
	require.NoError(t, err)
	clusters := snap.GetResources(resourcev3.ClusterType)

	triton := clusters["triton"].(*clusterv3.Cluster)
	var opts httpv3.HttpProtocolOptions
	require.NoError(t, triton.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].UnmarshalTo(&opts))
	h2 := opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions()
	require.NotNil(t, h2, "kserve-v2-grpc implies HTTP/2")
	assert.Equal(t, uint32(h2StreamWindow), h2.GetInitialStreamWindowSize().GetValue())
	assert.Greater(t, h2.GetInitialConnectionWindowSize().GetValue(), uint32(64*h2StreamWindow), "stalled streams must not block the connection")
	assert.Equal(t, h2KeepaliveInterval, h2.GetConnectionKeepalive().GetInterval().AsDuration())
	require.Len(t, triton.GetHealthChecks(), 1)
	assert.NotNil(t, triton.GetHealthChecks()[0].GetGrpcHealthCheck(), "gRPC backends are probed with grpc.health.v1")

	vllm := clusters["vllm"].(*clusterv3.Cluster)
	assert.Nil(t, vllm.GetTypedExtensionProtocolOptions(), "HTTP/1.1 backends are unchanged")
}

func TestListenerCarriesGRPC(t *testing.T) {
	snap, err := Snapshot(parse(t, grpcBackend), AllInOne)
	require.NoError(t, err)
	l := snap.GetResources(resourcev3.ListenerType)[ListenerName].(*listenerv3.Listener)
	var hcm hcmv3.HttpConnectionManager
	require.NoError(t, l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm))
	var names []string
	for _, f := range hcm.GetHttpFilters() {
		names = append(names, f.GetName())
	}
	assert.Equal(t, []string{"envoy.filters.http.ext_proc", "envoy.filters.http.grpc_stats", "envoy.filters.http.router"}, names)
	assert.Equal(t, uint32(clientStreamWindow), hcm.GetHttp2ProtocolOptions().GetInitialStreamWindowSize().GetValue())
	mappers := hcm.GetLocalReplyConfig().GetMappers()
	require.NotEmpty(t, mappers)
	assert.Equal(t, "content-type", mappers[0].GetFilter().GetHeaderFilter().GetHeader().GetName(), "gRPC local replies are matched first")
}

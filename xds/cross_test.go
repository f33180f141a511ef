package xds

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/contract"
)

const crossSrc = `backends:
  - name: vllm
    protocol: openai
    endpoints: [127.0.0.1:8000]
  - name: vllm2
    protocol: openai
    endpoints: [127.0.0.1:8002]
  - name: br
    protocol: bedrock
    endpoints: [127.0.0.1:9443]
    aws: {region: eu-central-1}
  - {name: store, protocol: http, endpoints: ["127.0.0.1:8100"]}
services:
  - {name: chroma, path_prefix: /chroma/, backend: store}
models:
  - {name: x, backend: vllm, fallbacks: [br]}
  - {name: same, backend: vllm2, fallbacks: [vllm]}
`

// TestCrossChain: a chain mixing protocols gets the upstream filters on its
// aggregate cluster, its backends' endpoints name their backend, its route
// names the backend that answered; a chain of one protocol gets none of it.
func TestCrossChain(t *testing.T) {
	cfg := parse(t, crossSrc)
	snap, err := Snapshot(cfg, AllInOne)
	require.NoError(t, err)
	clusters := snap.GetResources(resourcev3.ClusterType)

	cross := clusters[contract.FailoverCluster([]string{"vllm", "br"})].(*clusterv3.Cluster)
	var opts httpv3.HttpProtocolOptions
	require.NoError(t, cross.GetTypedExtensionProtocolOptions()[httpProtocolOptionsKey].UnmarshalTo(&opts))
	var names []string
	for _, f := range opts.GetHttpFilters() {
		names = append(names, f.GetName())
	}
	assert.Equal(t, []string{"streamgate.cross_headers", contract.UpstreamExtProcFilter, "envoy.filters.http.upstream_codec"}, names)
	var clear headermutationv3.HeaderMutation
	require.NoError(t, opts.GetHttpFilters()[0].GetTypedConfig().UnmarshalTo(&clear))
	assert.Equal(t, "x-amz-", clear.GetMutations().GetRequestMutations()[0].GetRemoveOnMatch().GetKeyMatcher().GetPrefix(),
		"an earlier attempt's signature is cleared")
	var ep extprocv3.ExternalProcessor
	require.NoError(t, opts.GetHttpFilters()[1].GetTypedConfig().UnmarshalTo(&ep))
	assert.Equal(t, []string{contract.UpstreamAttribute}, ep.GetRequestAttributes())
	assert.True(t, ep.GetMutationRules().GetAllowAllRouting().GetValue(), "the upstream filter sets each attempt's Host")
	assert.Equal(t, extprocv3.ProcessingMode_BUFFERED, ep.GetProcessingMode().GetRequestBodyMode())
	assert.Equal(t, extprocv3.ProcessingMode_SKIP, ep.GetProcessingMode().GetResponseHeaderMode())

	same := clusters[contract.FailoverCluster([]string{"vllm2", "vllm"})].(*clusterv3.Cluster)
	assert.Empty(t, same.GetTypedExtensionProtocolOptions(), "one protocol: no upstream filters, no extra stream")

	eps := snap.GetResources(resourcev3.EndpointType)
	for name, want := range map[string]bool{"vllm": true, "br": true, "vllm2": false} {
		md := eps[name].(*endpointv3.ClusterLoadAssignment).GetEndpoints()[0].GetLbEndpoints()[0].GetMetadata()
		if want {
			assert.Equal(t, name, md.GetFilterMetadata()[contract.EndpointNamespace].GetFields()[contract.EndpointBackendKey].GetStringValue())
		} else {
			assert.Nil(t, md, "%s is in no mixed chain", name)
		}
	}

	rc := snap.GetResources(resourcev3.RouteType)[RouteName].(*routev3.RouteConfiguration)
	answered := map[string]string{}
	for _, r := range rc.GetVirtualHosts()[0].GetRoutes() {
		for _, h := range r.GetResponseHeadersToAdd() {
			if h.GetHeader().GetKey() == contract.AnsweredByHeader {
				answered[r.GetName()] = h.GetHeader().GetValue()
			}
		}
		if r.GetName() == "backend_"+contract.FailoverCluster([]string{"vllm", "br"}) {
			assert.Nil(t, r.GetRoute().GetHostRewriteSpecifier(), "each attempt sets its own Host")
			assert.NotNil(t, r.GetRoute().GetRetryPolicy())
		}
	}
	assert.Equal(t, map[string]string{"backend_" + contract.FailoverCluster([]string{"vllm", "br"}): "%UPSTREAM_METADATA(streamgate:backend)%"}, answered)
}

// TestStripAmz: with a bedrock backend the listener removes a client's
// x-amz-* headers before ext_proc, except on service routes; without one
// the listener is unchanged.
func TestStripAmz(t *testing.T) {
	first := func(src string) string {
		snap, err := Snapshot(parse(t, src), AllInOne)
		require.NoError(t, err)
		l := snap.GetResources(resourcev3.ListenerType)[ListenerName].(*listenerv3.Listener)
		var hcm hcmv3.HttpConnectionManager
		require.NoError(t, l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm))
		return hcm.GetHttpFilters()[0].GetName()
	}
	assert.Equal(t, stripAmzFilter, first(crossSrc))
	assert.Equal(t, contract.ExtProcFilter, first(twoBackends))

	rc, err := routeConfig(parse(t, crossSrc))
	require.NoError(t, err)
	for _, r := range rc.GetVirtualHosts()[0].GetRoutes() {
		_, off := r.GetTypedPerFilterConfig()[stripAmzFilter]
		assert.Equal(t, r.GetName() == contract.ServiceRoutePrefix+"chroma", off, r.GetName())
	}
}

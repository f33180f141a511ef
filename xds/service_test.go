package xds

import (
	"os"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/goccy/go-yaml"
	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/streamgate/streamgate/contract"
)

const withService = `
backends:
  - name: zeta
    protocol: openai
    endpoints: [10.0.0.1:8000]
  - name: chroma
    protocol: http
    endpoints: [10.0.0.9:8000]
models:
  - {name: m, backend: zeta}
services:
  - {name: chroma, backend: chroma, path_prefix: /chroma/, rewrite: /}
limits:
  tenants: [{name: "*", services: [{name: chroma, concurrent_requests: 2}]}]
`

func TestServiceRoutes(t *testing.T) {
	snap, err := Snapshot(parse(t, withService), AllInOne)
	require.NoError(t, err)
	require.Contains(t, snap.GetResources(resourcev3.ClusterType), "chroma", "the service's backend is a cluster")
	rc := snap.GetResources(resourcev3.RouteType)[RouteName].(*routev3.RouteConfiguration)
	routes := rc.GetVirtualHosts()[0].GetRoutes()
	first := routes[0]
	assert.Equal(t, contract.ServiceRoutePrefix+"chroma", first.GetName(), "service routes come before every model route")
	assert.Equal(t, "/chroma/", first.GetMatch().GetPrefix())
	assert.Empty(t, first.GetMatch().GetHeaders(), "routed by the path alone")
	assert.Equal(t, "chroma", first.GetRoute().GetCluster())
	assert.Equal(t, "/", first.GetRoute().GetPrefixRewrite())
	assert.Zero(t, first.GetRoute().GetTimeout().AsDuration(), "streams have no overall timeout")
	var per extprocv3.ExtProcPerRoute
	require.NoError(t, first.GetTypedPerFilterConfig()[contract.ExtProcFilter].UnmarshalTo(&per))
	mode := per.GetOverrides().GetProcessingMode()
	assert.Equal(t, extprocv3.ProcessingMode_NONE, mode.GetRequestBodyMode(), "the body is not asked for")
	assert.Equal(t, extprocv3.ProcessingMode_NONE, mode.GetResponseBodyMode())
	assert.Equal(t, extprocv3.ProcessingMode_SKIP, mode.GetResponseHeaderMode())
	assert.Len(t, first.GetResponseHeadersToAdd(), len(contract.RateLimitHeaders))
	for _, r := range routes {
		assert.NotEqual(t, "backend_chroma", r.GetName(), "no header route leads to a service backend")
	}

	l := snap.GetResources(resourcev3.ListenerType)[ListenerName].(*listenerv3.Listener)
	var hcm hcmv3.HttpConnectionManager
	require.NoError(t, l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm))
	var found *accesslogv3.AccessLog
	for _, al := range hcm.GetAccessLog() {
		if mf := al.GetFilter().GetMetadataFilter(); mf != nil && mf.GetMatcher().GetFilter() == contract.MetadataNamespace {
			found = al
		}
	}
	require.NotNil(t, found, "the service log sends service requests' entries")
}

func TestNoServiceNoServiceLog(t *testing.T) {
	snap, err := Snapshot(parse(t, twoBackends), AllInOne)
	require.NoError(t, err)
	l := snap.GetResources(resourcev3.ListenerType)[ListenerName].(*listenerv3.Listener)
	var hcm hcmv3.HttpConnectionManager
	require.NoError(t, l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm))
	for _, al := range hcm.GetAccessLog() {
		assert.Nil(t, al.GetFilter().GetMetadataFilter(), "no service log without services")
	}
}

// TestDropInServiceSnippets keeps envoy/dropin/service_route.yaml equal to
// the route the all-in-one snapshot publishes for the same service (with
// limits), and service_log.yaml to its service log.
func TestDropInServiceSnippets(t *testing.T) {
	src, err := os.ReadFile("../envoy/dropin/service_route.yaml")
	require.NoError(t, err)
	js, err := yaml.YAMLToJSON(src)
	require.NoError(t, err)
	var got routev3.Route
	require.NoError(t, protojson.Unmarshal(js, &got))
	require.NoError(t, got.Validate())
	want, err := serviceRoutes(parse(t, withService))
	require.NoError(t, err)
	if diff := cmp.Diff(want[0], &got, protocmp.Transform()); diff != "" {
		t.Fatalf("envoy/dropin/service_route.yaml differs from the all-in-one service route (-want +got):\n%s", diff)
	}

	src, err = os.ReadFile("../envoy/dropin/service_log.yaml")
	require.NoError(t, err)
	js, err = yaml.YAMLToJSON(src)
	require.NoError(t, err)
	var gotLog accesslogv3.AccessLog
	require.NoError(t, protojson.Unmarshal(js, &gotLog))
	wantLog, err := serviceAccessLog()
	require.NoError(t, err)
	if diff := cmp.Diff(wantLog, &gotLog, protocmp.Transform()); diff != "" {
		t.Fatalf("envoy/dropin/service_log.yaml differs from the all-in-one service log (-want +got):\n%s", diff)
	}
}

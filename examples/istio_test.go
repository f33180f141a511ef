package examples_test

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	aggregatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/clusters/aggregate/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	istioapiv1alpha3 "istio.io/api/networking/v1alpha3"
	istiov1 "istio.io/client-go/pkg/apis/networking/v1"
	istiov1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

const istioDir = root + "/examples/istio"

// istioKinds are the Istio resources the example uses.
var istioKinds = map[string]func() any{
	"networking.istio.io/v1alpha3/EnvoyFilter": func() any { return &istiov1alpha3.EnvoyFilter{} },
	"networking.istio.io/v1/Gateway":           func() any { return &istiov1.Gateway{} },
	"networking.istio.io/v1/VirtualService":    func() any { return &istiov1.VirtualService{} },
	"networking.istio.io/v1/ServiceEntry":      func() any { return &istiov1.ServiceEntry{} },
	"networking.istio.io/v1/DestinationRule":   func() any { return &istiov1.DestinationRule{} },
}

// loadIstio decodes every Istio manifest. Istio's generated JSON decoders
// accept unknown fields, so each spec is also decoded with protojson,
// which does not.
func loadIstio(t *testing.T) []object {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(istioDir, "*.yaml"))
	require.NoError(t, err)
	var manifests []string
	for _, f := range files {
		if filepath.Base(f) != "streamgate.yaml" {
			manifests = append(manifests, f)
		}
	}
	objs := decodeManifests(t, istioKinds, manifests...)
	for _, f := range manifests {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, doc := range strings.Split(string(raw), "\n---\n") {
			var o struct {
				Kind string          `json:"kind"`
				Spec json.RawMessage `json:"spec"`
			}
			require.NoError(t, yaml.Unmarshal([]byte(doc), &o))
			if o.Kind == "" {
				continue
			}
			var spec proto.Message
			for _, obj := range objs {
				if obj.kind == o.Kind {
					spec = specOf(obj.obj)
				}
			}
			require.NotNil(t, spec, o.Kind)
			strict := proto.Clone(spec)
			proto.Reset(strict)
			require.NoError(t, protojson.Unmarshal(o.Spec, strict), "%s: %s spec does not decode strictly", filepath.Base(f), o.Kind)
		}
	}
	return objs
}

func specOf(obj any) proto.Message {
	switch v := obj.(type) {
	case *istiov1alpha3.EnvoyFilter:
		return &v.Spec
	case *istiov1.Gateway:
		return &v.Spec
	case *istiov1.VirtualService:
		return &v.Spec
	case *istiov1.ServiceEntry:
		return &v.Spec
	case *istiov1.DestinationRule:
		return &v.Spec
	}
	return nil
}

// dropInFilter is envoy/dropin/http_filter.yaml decoded.
func dropInFilter(t *testing.T) *hcmv3.HttpFilter {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "envoy/dropin/http_filter.yaml"))
	require.NoError(t, err)
	js, err := yaml.YAMLToJSON(raw)
	require.NoError(t, err)
	var f hcmv3.HttpFilter
	require.NoError(t, protojson.Unmarshal(js, &f))
	return &f
}

// patchFilter decodes an HTTP_FILTER patch value as an Envoy HttpFilter.
func patchFilter(t *testing.T, p *istioapiv1alpha3.EnvoyFilter_EnvoyConfigObjectPatch) *hcmv3.HttpFilter {
	t.Helper()
	js, err := protojson.Marshal(p.GetPatch().GetValue())
	require.NoError(t, err)
	var f hcmv3.HttpFilter
	require.NoError(t, protojson.Unmarshal(js, &f))
	require.NoError(t, f.ValidateAll())
	return &f
}

// TestIstioFilterIsTheDropInFilter: the ext_proc filter the EnvoyFilters
// insert before the router is envoy/dropin/http_filter.yaml, apart from
// the gRPC cluster, which is Istio's outbound cluster for the streamgate
// Service's gRPC ext_proc port.
func TestIstioFilterIsTheDropInFilter(t *testing.T) {
	objs := loadIstio(t)
	svc := find[*corev1.Service](t, loadRemoteExtProc(t), "Service", "streamgate-extproc")
	var extprocPort corev1.ServicePort
	for _, p := range svc.Spec.Ports {
		if p.Name == "grpc-extproc" {
			extprocPort = p
		}
	}
	require.NotZero(t, extprocPort.Port, "the streamgate-extproc Service has a grpc-extproc port")
	wantCluster := "outbound|" + strconv.Itoa(int(extprocPort.Port)) + "||streamgate-extproc.streamgate.svc.cluster.local"

	contexts := map[istioapiv1alpha3.EnvoyFilter_PatchContext]bool{}
	for _, o := range objs {
		ef, ok := o.obj.(*istiov1alpha3.EnvoyFilter)
		if !ok {
			continue
		}
		for _, p := range ef.Spec.GetConfigPatches() {
			if p.GetApplyTo() != istioapiv1alpha3.EnvoyFilter_HTTP_FILTER {
				continue
			}
			contexts[p.GetMatch().GetContext()] = true
			lm := p.GetMatch().GetListener().GetFilterChain().GetFilter()
			assert.Equal(t, "envoy.filters.network.http_connection_manager", lm.GetName())
			assert.Equal(t, "envoy.filters.http.router", lm.GetSubFilter().GetName())
			assert.Equal(t, istioapiv1alpha3.EnvoyFilter_Patch_INSERT_BEFORE, p.GetPatch().GetOperation())

			got := patchFilter(t, p)
			var ep extprocv3.ExternalProcessor
			require.NoError(t, got.GetTypedConfig().UnmarshalTo(&ep))
			assert.Equal(t, wantCluster, ep.GetGrpcService().GetEnvoyGrpc().GetClusterName(), "%s", o.name)
			assert.False(t, ep.GetFailureModeAllow(), "fail closed")
			// Everything else equals the drop-in snippet.
			ep.GetGrpcService().GetEnvoyGrpc().ClusterName = "streamgate_extproc"
			got.Disabled = false
			require.NoError(t, got.GetTypedConfig().MarshalFrom(&ep))
			if diff := cmp.Diff(dropInFilter(t), got, protocmp.Transform()); diff != "" {
				t.Errorf("%s: the ext_proc filter differs from envoy/dropin/http_filter.yaml (-want +got):\n%s", o.name, diff)
			}
		}
	}
	assert.True(t, contexts[istioapiv1alpha3.EnvoyFilter_GATEWAY], "an EnvoyFilter patches the ingress gateway")
	assert.True(t, contexts[istioapiv1alpha3.EnvoyFilter_SIDECAR_INBOUND], "an EnvoyFilter patches inbound sidecars")
}

// TestIstioRouting: the VirtualService routes every backend of the Istio
// streamgate.yaml on x-streamgate-backend to that backend's host and port,
// with no route timeout, on the host whose virtual host the EnvoyFilter
// enables ext_proc for.
func TestIstioRouting(t *testing.T) {
	objs := loadIstio(t)
	cfgPath := filepath.Join(istioDir, "streamgate.yaml")
	t.Setenv("OPENAI_API_KEY", "test-only")
	streamgateValidate(t, cfgPath)
	cfg, err := config.Load(cfgPath)
	require.NoError(t, err)

	vs := find[*istiov1.VirtualService](t, objs, "VirtualService", "streamgate-models")
	gw := find[*istiov1.Gateway](t, objs, "Gateway", "streamgate")
	assert.Contains(t, vs.Spec.GetGateways(), gw.Namespace+"/"+gw.Name)
	routed := map[string]bool{}
	for i, r := range vs.Spec.GetHttp() {
		if r.GetDirectResponse() != nil {
			assert.Empty(t, r.GetMatch(), "%s: the catch-all route matches every request", r.GetName())
			assert.Equal(t, len(vs.Spec.GetHttp())-1, i, "%s: the catch-all route comes last", r.GetName())
			continue
		}
		require.Len(t, r.GetMatch(), 1, r.GetName())
		name := r.GetMatch()[0].GetHeaders()["x-streamgate-backend"].GetExact()
		if strings.HasPrefix(name, contract.FailoverPrefix) {
			continue // TestIstioFailover
		}
		b := cfg.Backend(name)
		require.NotNil(t, b, "route %s matches x-streamgate-backend %q, which is no backend", r.GetName(), name)
		routed[name] = true
		host, port, err := net.SplitHostPort(b.Endpoints[0].Address)
		require.NoError(t, err)
		require.Len(t, r.GetRoute(), 1)
		assert.Equal(t, host, r.GetRoute()[0].GetDestination().GetHost(), r.GetName())
		assert.Equal(t, port, strconv.Itoa(int(r.GetRoute()[0].GetDestination().GetPort().GetNumber())), r.GetName())
		assert.Equal(t, time.Duration(0), r.GetTimeout().AsDuration(), "%s: token streams need no route timeout", r.GetName())
	}
	for _, b := range cfg.Backends {
		assert.True(t, routed[b.Name], "backend %s has no route", b.Name)
	}

	// The VIRTUAL_HOST patch names the gateway's vhost for the model host,
	// enables ext_proc there and buffers bodies up to the gateway limit.
	ef := find[*istiov1alpha3.EnvoyFilter](t, objs, "EnvoyFilter", "streamgate-extproc")
	var vh *istioapiv1alpha3.EnvoyFilter_EnvoyConfigObjectPatch
	for _, p := range ef.Spec.GetConfigPatches() {
		if p.GetApplyTo() == istioapiv1alpha3.EnvoyFilter_VIRTUAL_HOST {
			vh = p
		}
	}
	require.NotNil(t, vh)
	server := gw.Spec.GetServers()[0]
	assert.Equal(t, vs.Spec.GetHosts()[0]+":"+strconv.Itoa(int(server.GetPort().GetNumber())), vh.GetMatch().GetRouteConfiguration().GetVhost().GetName())
	js, err := protojson.Marshal(vh.GetPatch().GetValue())
	require.NoError(t, err)
	var merged routev3.VirtualHost
	require.NoError(t, protojson.Unmarshal(js, &merged))
	assert.GreaterOrEqual(t, merged.GetRequestBodyBufferLimit().GetValue(), uint64(cfg.Gateway.MaxRequestBodyBytes))
	assert.Contains(t, merged.GetTypedPerFilterConfig(), "envoy.filters.http.ext_proc")
}

// TestIstioFailover: every failover chain of the Istio streamgate.yaml has
// a VirtualService route matching its name, and envoyfilter-failover.yaml
// adds the chain's aggregate cluster over Istio's outbound clusters of its
// backends, in order, and points that route at it with the retry policy
// the all-in-one gateway uses (one retry per fallback, previous
// priorities).
func TestIstioFailover(t *testing.T) {
	objs := loadIstio(t)
	t.Setenv("OPENAI_API_KEY", "test-only")
	cfg, err := config.Load(filepath.Join(istioDir, "streamgate.yaml"))
	require.NoError(t, err)
	chains := map[string][]string{}
	for _, m := range cfg.Models {
		for _, v := range m.Versions {
			if chain := contract.FailoverChain(v.Backend, m.Fallbacks); len(chain) > 1 {
				chains[contract.FailoverCluster(chain)] = chain
			}
		}
	}
	require.NotEmpty(t, chains, "the example shows a model with fallbacks")

	vs := find[*istiov1.VirtualService](t, objs, "VirtualService", "streamgate-models")
	routeOf := map[string]string{} // chain cluster -> route name
	for _, r := range vs.Spec.GetHttp() {
		for _, m := range r.GetMatch() {
			if name := m.GetHeaders()["x-streamgate-backend"].GetExact(); strings.HasPrefix(name, contract.FailoverPrefix) {
				require.Contains(t, chains, name, "route %s matches a chain no model has", r.GetName())
				routeOf[name] = r.GetName()
			}
		}
	}
	ef := find[*istiov1alpha3.EnvoyFilter](t, objs, "EnvoyFilter", "streamgate-failover")
	clusters, routes := map[string]*struct{ children []string }{}, map[string]*routev3.Route{}
	for _, p := range ef.Spec.GetConfigPatches() {
		js, err := protojson.Marshal(p.GetPatch().GetValue())
		require.NoError(t, err)
		switch p.GetApplyTo() {
		case istioapiv1alpha3.EnvoyFilter_CLUSTER:
			assert.Equal(t, istioapiv1alpha3.EnvoyFilter_Patch_ADD, p.GetPatch().GetOperation())
			var c clusterv3.Cluster
			require.NoError(t, protojson.Unmarshal(js, &c))
			require.NoError(t, c.ValidateAll())
			var agg aggregatev3.ClusterConfig
			require.NoError(t, c.GetClusterType().GetTypedConfig().UnmarshalTo(&agg))
			clusters[c.GetName()] = &struct{ children []string }{agg.GetClusters()}
		case istioapiv1alpha3.EnvoyFilter_HTTP_ROUTE:
			assert.Equal(t, istioapiv1alpha3.EnvoyFilter_Patch_MERGE, p.GetPatch().GetOperation())
			var r routev3.Route
			require.NoError(t, protojson.Unmarshal(js, &r))
			routes[p.GetMatch().GetRouteConfiguration().GetVhost().GetRoute().GetName()] = &r
		}
	}
	for name, chain := range chains {
		require.Contains(t, routeOf, name, "no VirtualService route for failover chain %s", name)
		require.Contains(t, clusters, name, "no aggregate cluster for failover chain %s", name)
		var want []string
		for _, b := range chain {
			host, port, err := net.SplitHostPort(cfg.Backend(b).Endpoints[0].Address)
			require.NoError(t, err)
			want = append(want, "outbound|"+port+"||"+host)
		}
		assert.Equal(t, want, clusters[name].children, "the chain's backends in order")
		r := routes[routeOf[name]]
		require.NotNil(t, r, "no HTTP_ROUTE patch for route %s", routeOf[name])
		assert.Equal(t, name, r.GetRoute().GetCluster())
		rp := r.GetRoute().GetRetryPolicy()
		assert.Equal(t, uint32(len(chain)-1), rp.GetNumRetries().GetValue())
		assert.Equal(t, "envoy.retry_priorities.previous_priorities", rp.GetRetryPriority().GetName())
		assert.Contains(t, rp.GetRetryOn(), "5xx")
	}
}

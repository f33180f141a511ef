package xds

import (
	"fmt"
	"sort"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

// StaticOptions shape the bootstrap StaticBootstrap renders.
type StaticOptions struct {
	// Plain drops every HTTP filter but the router, and the ext_proc
	// cluster with them: Envoy with Streamgate's listener, routes and
	// clusters but without Streamgate. Clients must then send the backend
	// header themselves. The benchmark's baseline.
	Plain bool
}

// StaticBootstrap renders the all-in-one snapshot for cfg as a static Envoy
// bootstrap (JSON, which Envoy reads as YAML too): the same listener, routes
// and clusters the xDS server publishes, inlined, with no xDS server needed.
// EDS clusters become STATIC clusters carrying their endpoints.
func StaticBootstrap(cfg *config.Config, o StaticOptions) ([]byte, error) {
	snap, err := Snapshot(cfg, AllInOne)
	if err != nil {
		return nil, err
	}
	routes := map[string]*routev3.RouteConfiguration{}
	for name, r := range snap.GetResources(resourcev3.RouteType) {
		routes[name] = r.(*routev3.RouteConfiguration)
	}
	endpoints := map[string]*endpointv3.ClusterLoadAssignment{}
	for name, r := range snap.GetResources(resourcev3.EndpointType) {
		endpoints[name] = r.(*endpointv3.ClusterLoadAssignment)
	}
	static := &bootstrapv3.Bootstrap_StaticResources{}
	for _, name := range sortedKeys(snap.GetResources(resourcev3.ListenerType)) {
		l := proto.Clone(snap.GetResources(resourcev3.ListenerType)[name]).(*listenerv3.Listener)
		if err := inlineRoutes(l, routes, o.Plain); err != nil {
			return nil, err
		}
		static.Listeners = append(static.Listeners, l)
	}
	for _, name := range sortedKeys(snap.GetResources(resourcev3.ClusterType)) {
		if o.Plain && name == contract.ExtProcCluster {
			continue
		}
		c := proto.Clone(snap.GetResources(resourcev3.ClusterType)[name]).(*clusterv3.Cluster)
		if c.GetType() == clusterv3.Cluster_EDS {
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
			c.EdsClusterConfig = nil
			c.LoadAssignment = endpoints[name]
		}
		static.Clusters = append(static.Clusters, c)
	}
	b := &bootstrapv3.Bootstrap{
		Node:            &corev3.Node{Id: cfg.Envoy.NodeID, Cluster: "streamgate"},
		Admin:           &bootstrapv3.Admin{Address: socketAddress(cfg.Envoy.Admin)},
		StaticResources: static,
	}
	out, err := protojson.MarshalOptions{Multiline: true}.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("cannot encode static bootstrap: %w", err)
	}
	return out, nil
}

// inlineRoutes replaces the RDS reference of every HTTP connection manager
// in l by the route configuration it names; plain keeps only the router.
func inlineRoutes(l *listenerv3.Listener, routes map[string]*routev3.RouteConfiguration, plain bool) error {
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			hcm := &hcmv3.HttpConnectionManager{}
			if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
				continue // not an HTTP connection manager
			}
			rc, ok := routes[hcm.GetRds().GetRouteConfigName()]
			if !ok {
				return fmt.Errorf("cannot inline routes: listener %q names unknown route config %q", l.GetName(), hcm.GetRds().GetRouteConfigName())
			}
			hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc}
			if plain {
				kept := hcm.HttpFilters[:0]
				for _, hf := range hcm.GetHttpFilters() {
					if hf.GetName() == wellknown.Router {
						kept = append(kept, hf)
					}
				}
				hcm.HttpFilters = kept
				hcm.AccessLog = withoutGRPCAccessLog(hcm.AccessLog)
			}
			a, err := anypb.New(hcm)
			if err != nil {
				return fmt.Errorf("cannot encode HTTP connection manager: %w", err)
			}
			f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

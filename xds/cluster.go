package xds

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

// backendCluster is the cluster for one backend. When every endpoint is an
// IP address it is an EDS cluster whose endpoints come from backendEndpoints,
// so endpoint changes never rebuild the cluster; endpoints named by DNS make
// it a STRICT_DNS cluster carrying its endpoints inline.
func backendCluster(b *config.Backend) (*clusterv3.Cluster, error) {
	c := &clusterv3.Cluster{
		Name:           b.Name,
		ConnectTimeout: durationpb.New(b.ConnectTimeout),
		LbPolicy:       clusterv3.Cluster_LEAST_REQUEST,
	}
	if usesEDS(b) {
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
		c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()}
	} else {
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
		c.LoadAssignment = backendEndpoints(b)
	}
	if err := applyBackendKnobs(c, b); err != nil {
		return nil, err
	}
	if b.TLS != nil {
		ts, err := upstreamTLS(b)
		if err != nil {
			return nil, err
		}
		c.TransportSocket = ts
	}
	return c, nil
}

// upstreamTLS makes Envoy speak TLS to b and verify the backend's
// certificate: signed by the trusted CA (ca_file, else the system bundle)
// and naming b.ServerName() (a DNS name, or an IP address for an IP
// endpoint without sni), which is also sent as SNI unless it is an IP.
// Only tls.insecure_skip_verify leaves the certificate unchecked.
func upstreamTLS(b *config.Backend) (*corev3.TransportSocket, error) {
	name := b.ServerName()
	tc := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{}}
	if b.HTTP2 {
		// Hosted APIs (api.openai.com behind its CDN) speak HTTP/2 only
		// when TLS negotiates it.
		tc.CommonTlsContext.AlpnProtocols = []string{"h2"}
	}
	sanType := tlsv3.SubjectAltNameMatcher_IP_ADDRESS
	if net.ParseIP(name) == nil {
		tc.Sni = name
		sanType = tlsv3.SubjectAltNameMatcher_DNS
	}
	if !b.TLS.InsecureSkipVerify {
		tc.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{
			ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: b.TLS.TrustedCA()}},
				MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
					SanType: sanType,
					Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: name}},
				}},
			},
		}
	}
	a, err := toAny(tc)
	if err != nil {
		return nil, fmt.Errorf("cannot encode TLS context for backend %q: %w", b.Name, err)
	}
	return &corev3.TransportSocket{
		Name:       wellknown.TransportSocketTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a},
	}, nil
}

// usesEDS reports whether all of b's endpoints are IP addresses.
func usesEDS(b *config.Backend) bool {
	for _, ep := range b.Endpoints {
		host, _, _ := net.SplitHostPort(ep.Address)
		if net.ParseIP(host) == nil {
			return false
		}
	}
	return true
}

// backendEndpoints lists a backend's endpoints as one locality.
func backendEndpoints(b *config.Backend) *endpointv3.ClusterLoadAssignment {
	lb := make([]*endpointv3.LbEndpoint, 0, len(b.Endpoints))
	for _, ep := range b.Endpoints {
		lb = append(lb, &endpointv3.LbEndpoint{
			HostIdentifier:      &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(ep.Address)}},
			LoadBalancingWeight: wrapperspb.UInt32(ep.Weight),
		})
	}
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: b.Name,
		Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lb}},
	}
}

// extProcCluster reaches the ext_proc gRPC server over HTTP/2, on TCP or a
// unix socket ("unix:/path"). A DNS name makes it a STRICT_DNS cluster.
func extProcCluster(listen string) (*clusterv3.Cluster, error) {
	var addr *corev3.Address
	discovery := clusterv3.Cluster_STATIC
	if path, ok := strings.CutPrefix(listen, "unix:"); ok {
		addr = &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: path}}}
	} else {
		addr = socketAddress(listen)
		if host, _, _ := net.SplitHostPort(listen); net.ParseIP(host) == nil {
			discovery = clusterv3.Cluster_STRICT_DNS
		}
	}
	opts, err := http2Options()
	if err != nil {
		return nil, err
	}
	return &clusterv3.Cluster{
		Name:                          contract.ExtProcCluster,
		ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: discovery},
		ConnectTimeout:                durationpb.New(config.DefaultConnectTimeout),
		TypedExtensionProtocolOptions: opts,
		// Each request that limits or translates holds one ext_proc stream
		// for its whole life; Envoy's default of 1024 requests per cluster
		// would cap the gateway at 1024 such streams.
		CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxRequests:        wrapperspb.UInt32(1 << 20),
			MaxPendingRequests: wrapperspb.UInt32(1 << 20),
			MaxConnections:     wrapperspb.UInt32(1 << 10),
		}}},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: contract.ExtProcCluster,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: addr}},
			}}}},
		},
	}, nil
}

func http2Options() (map[string]*anypb.Any, error) {
	return protocolOptions(&corev3.Http2ProtocolOptions{}, nil)
}

// protocolOptions picks HTTP/2 with h2 (HTTP/1.1 when h2 is nil) toward an
// upstream and its connection reuse settings.
func protocolOptions(h2 *corev3.Http2ProtocolOptions, pool *config.ConnectionPool) (map[string]*anypb.Any, error) {
	opts := &httpv3.HttpProtocolOptions{}
	if h2 != nil {
		opts.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: h2,
				},
			},
		}
	} else {
		opts.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{},
			},
		}
	}
	if pool != nil {
		opts.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{}
		if pool.IdleTimeout > 0 {
			opts.CommonHttpProtocolOptions.IdleTimeout = durationpb.New(pool.IdleTimeout)
		}
		if pool.MaxRequestsPerConnection > 0 {
			opts.CommonHttpProtocolOptions.MaxRequestsPerConnection = wrapperspb.UInt32(pool.MaxRequestsPerConnection)
		}
	}
	a, err := toAny(opts)
	if err != nil {
		return nil, fmt.Errorf("cannot encode HTTP/2 options: %w", err)
	}
	return map[string]*anypb.Any{httpProtocolOptionsKey: a}, nil
}

// socketAddress turns a validated host:port into an Envoy address.
func socketAddress(hostPort string) *corev3.Address {
	host, p, _ := net.SplitHostPort(hostPort)
	port, _ := strconv.Atoi(p)
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// unroutedCluster has no endpoints: a request that reaches it gets a 503.
func unroutedCluster() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 contract.UnroutedCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(config.DefaultConnectTimeout),
		LoadAssignment:       &endpointv3.ClusterLoadAssignment{ClusterName: contract.UnroutedCluster},
	}
}

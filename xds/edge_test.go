package xds

import (
	"fmt"
	"os"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const tlsConfig = `
backends:
  - name: b
    protocol: openai
    endpoints: [%s]
    tls: %s
models:
  - {name: m, backend: b}
`

// upstreamTLSContext returns the TLS context of backend b's cluster.
func upstreamTLSContext(t *testing.T, src string) *tlsv3.UpstreamTlsContext {
	t.Helper()
	snap, err := Snapshot(parse(t, src), AllInOne)
	require.NoError(t, err)
	c := snap.GetResources(resourcev3.ClusterType)["b"].(*clusterv3.Cluster)
	var tc tlsv3.UpstreamTlsContext
	require.NoError(t, c.GetTransportSocket().GetTypedConfig().UnmarshalTo(&tc))
	return &tc
}

func verifying(ca string, san tlsv3.SubjectAltNameMatcher_SanType, name string) *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{
		ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: ca}},
			MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
				SanType: san,
				Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: name}},
			}},
		},
	}}
}

// TestUpstreamTLSVerifiesCertificate: upstream TLS always checks the chain
// (ca_file, else the system bundle) and the name (SAN = SNI); only
// insecure_skip_verify drops the check.
func TestUpstreamTLSVerifiesCertificate(t *testing.T) {
	ca := t.TempDir() + "/ca.pem"
	require.NoError(t, os.WriteFile(ca, []byte("x"), 0o600))
	t.Setenv("SSL_CERT_FILE", "/etc/streamgate-test/system.pem")
	for name, tc := range map[string]struct {
		endpoint, tls string
		want          *tlsv3.UpstreamTlsContext
	}{
		"system roots, name from endpoint": {
			endpoint: "vllm.internal:443", tls: "{}",
			want: &tlsv3.UpstreamTlsContext{Sni: "vllm.internal", CommonTlsContext: verifying("/etc/streamgate-test/system.pem", tlsv3.SubjectAltNameMatcher_DNS, "vllm.internal")},
		},
		"ca_file and sni": {
			endpoint: "10.0.0.1:443", tls: "{sni: vllm.example, ca_file: " + ca + "}",
			want: &tlsv3.UpstreamTlsContext{Sni: "vllm.example", CommonTlsContext: verifying(ca, tlsv3.SubjectAltNameMatcher_DNS, "vllm.example")},
		},
		"IP endpoint without sni": {
			endpoint: "10.0.0.1:443", tls: "{ca_file: " + ca + "}",
			want: &tlsv3.UpstreamTlsContext{CommonTlsContext: verifying(ca, tlsv3.SubjectAltNameMatcher_IP_ADDRESS, "10.0.0.1")},
		},
		"insecure_skip_verify": {
			endpoint: "vllm.internal:443", tls: "{insecure_skip_verify: true}",
			want: &tlsv3.UpstreamTlsContext{Sni: "vllm.internal", CommonTlsContext: &tlsv3.CommonTlsContext{}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			got := upstreamTLSContext(t, fmt.Sprintf(tlsConfig, tc.endpoint, tc.tls))
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("TLS context (-want +got):\n%s", diff)
			}
		})
	}
}

// TestGatewayBoundsClientResources: the client-facing HCM caps streams per
// HTTP/2 connection, keeps small flow-control windows, and times out
// requests whose headers or body do not arrive.
func TestGatewayBoundsClientResources(t *testing.T) {
	src := `
gateway:
  max_concurrent_streams: 30
  request_headers_timeout: 3s
  request_body_timeout: 20s
backends: [{name: b, protocol: openai, endpoints: ["127.0.0.1:1"]}]
models: [{name: m, backend: b}]
`
	snap, err := Snapshot(parse(t, src), AllInOne)
	require.NoError(t, err)
	l := snap.GetResources(resourcev3.ListenerType)[ListenerName].(*listenerv3.Listener)
	var hcm hcmv3.HttpConnectionManager
	require.NoError(t, l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm))
	want := &corev3.Http2ProtocolOptions{
		MaxConcurrentStreams:        wrapperspb.UInt32(30),
		InitialStreamWindowSize:     wrapperspb.UInt32(64 << 10),
		InitialConnectionWindowSize: wrapperspb.UInt32(1 << 20),
		ConnectionKeepalive: &corev3.KeepaliveSettings{
			Interval: durationpb.New(h2KeepaliveInterval),
			Timeout:  durationpb.New(h2KeepaliveTimeout),
		},
	}
	if diff := cmp.Diff(want, hcm.GetHttp2ProtocolOptions(), protocmp.Transform()); diff != "" {
		t.Errorf("downstream HTTP/2 options (-want +got):\n%s", diff)
	}
	require.Equal(t, 3*time.Second, hcm.GetRequestHeadersTimeout().AsDuration())
	require.Equal(t, 20*time.Second, hcm.GetRequestTimeout().AsDuration())
	require.Equal(t, 5*time.Minute, hcm.GetStreamIdleTimeout().AsDuration(), "streams still have only an idle timeout")
}

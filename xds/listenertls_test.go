package xds

import (
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

// TestListenerTLS: gateway.tls gives the listener a TLS transport socket
// whose certificate and client CA come over SDS as secrets naming the
// files (never their bytes), TLS 1.2+ with AEAD suites and ALPN h2 first;
// the ext_proc filter asks for the client certificate's identity only
// when a client CA is set. Without gateway.tls nothing changes.
func TestListenerTLS(t *testing.T) {
	const base = "backends: [{name: a, protocol: openai, endpoints: [\"127.0.0.1:1\"]}]\n"
	for name, tc := range map[string]struct {
		gateway        string
		tls, clientCA  bool
		require, tls13 bool
	}{
		"plain":             {},
		"server TLS":        {gateway: "gateway: {tls: {cert_file: /etc/tls/c.pem, key_file: /etc/tls/k.pem}}\n", tls: true},
		"client CA":         {gateway: "gateway: {tls: {cert_file: /etc/tls/c.pem, key_file: /etc/tls/k.pem, client_ca_file: /etc/ca/ca.pem}}\n", tls: true, clientCA: true},
		"required, TLS 1.3": {gateway: "gateway: {tls: {cert_file: /etc/tls/c.pem, key_file: /etc/tls/k.pem, client_ca_file: /etc/ca/ca.pem, require_client_cert: true, min_version: \"1.3\"}}\n", tls: true, clientCA: true, require: true, tls13: true},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := config.Parse("t.yaml", []byte(tc.gateway+base))
			require.NoError(t, err)
			snap, err := Snapshot(cfg, AllInOne)
			require.NoError(t, err)
			l := snap.GetResources(resourcev3.ListenerType)[ListenerName].(*listenerv3.Listener)
			secrets := snap.GetResources(resourcev3.SecretType)
			var ep extprocv3.ExternalProcessor
			var hcm hcmv3.HttpConnectionManager
			require.NoError(t, l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm))
			require.NoError(t, hcm.GetHttpFilters()[0].GetTypedConfig().UnmarshalTo(&ep))
			if tc.clientCA {
				assert.Equal(t, clientCertAttributes, ep.GetRequestAttributes())
			} else {
				assert.Empty(t, ep.GetRequestAttributes(), "no attribute cost without client certificates")
			}
			ts := l.GetFilterChains()[0].GetTransportSocket()
			if !tc.tls {
				assert.Nil(t, ts)
				assert.Empty(t, secrets)
				return
			}
			var dt tlsv3.DownstreamTlsContext
			require.NoError(t, ts.GetTypedConfig().UnmarshalTo(&dt))
			common := dt.GetCommonTlsContext()
			assert.Equal(t, []string{"h2", "http/1.1"}, common.GetAlpnProtocols())
			want := tlsv3.TlsParameters_TLSv1_2
			if tc.tls13 {
				want = tlsv3.TlsParameters_TLSv1_3
			}
			assert.Equal(t, want, common.GetTlsParams().GetTlsMinimumProtocolVersion())
			assert.Equal(t, serverCiphers, common.GetTlsParams().GetCipherSuites())
			assert.Equal(t, tc.require, dt.GetRequireClientCertificate().GetValue())
			require.Len(t, common.GetTlsCertificateSdsSecretConfigs(), 1)
			cert := secrets[gatewayCertSecret].(*tlsv3.Secret).GetTlsCertificate()
			assert.Equal(t, "/etc/tls/c.pem", cert.GetCertificateChain().GetFilename())
			assert.Equal(t, "/etc/tls/k.pem", cert.GetPrivateKey().GetFilename(), "a file name: the key never passes through Streamgate")
			if tc.clientCA {
				assert.Equal(t, clientCASecret, common.GetValidationContextSdsSecretConfig().GetName())
				assert.Equal(t, "/etc/ca/ca.pem", secrets[clientCASecret].(*tlsv3.Secret).GetValidationContext().GetTrustedCa().GetFilename())
			} else {
				assert.Nil(t, common.GetValidationContextSdsSecretConfig())
				assert.Len(t, secrets, 1)
			}
		})
	}
}

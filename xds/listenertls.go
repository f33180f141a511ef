package xds

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

// Secret names of the gateway listener's TLS (gateway.tls), served over
// ADS. They name files, never hold key material: Envoy reads the files
// itself and, because the secrets come over SDS, watches the directories
// holding them and re-reads them when a file is renamed into place (a
// Kubernetes Secret update swaps a symlink the same way). Streamgate never
// reads the private key.
const (
	gatewayCertSecret = "streamgate_gateway_cert"
	clientCASecret    = "streamgate_client_ca"
)

// Client certificate attributes the ext_proc filter sends with the request
// headers when clients may present certificates (Envoy attribute names;
// the peer certificate is the verified one).
var clientCertAttributes = []string{contract.PeerURISANAttribute, contract.PeerDNSSANAttribute, contract.PeerSubjectAttribute}

// serverCiphers are the TLS 1.2 suites offered: ECDHE key exchange with
// AEAD ciphers only (TLS 1.3 suites are not configurable and all AEAD).
var serverCiphers = []string{
	"ECDHE-ECDSA-AES128-GCM-SHA256",
	"ECDHE-RSA-AES128-GCM-SHA256",
	"ECDHE-ECDSA-AES256-GCM-SHA384",
	"ECDHE-RSA-AES256-GCM-SHA384",
	"ECDHE-ECDSA-CHACHA20-POLY1305",
	"ECDHE-RSA-CHACHA20-POLY1305",
}

// listenerSecrets are the SDS secrets gateway.tls names; none without it.
func listenerSecrets(cfg *config.Config) []types.Resource {
	t := cfg.Gateway.TLS
	if t == nil {
		return nil
	}
	out := []types.Resource{&tlsv3.Secret{Name: gatewayCertSecret, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: fileSource(t.CertFile),
		PrivateKey:       fileSource(t.KeyFile),
	}}}}
	if t.ClientCAFile != "" {
		out = append(out, &tlsv3.Secret{Name: clientCASecret, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: fileSource(t.ClientCAFile),
		}}})
	}
	return out
}

func fileSource(name string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: name}}
}

// downstreamTLS is the gateway listener's TLS: the certificate and client
// CA from SDS, TLS 1.2 (or min_version) to 1.3, ALPN h2 then http/1.1 so
// gRPC clients get HTTP/2, and a client certificate asked for when a
// client CA is set (required with require_client_cert). Nil without
// gateway.tls.
func downstreamTLS(cfg *config.Config) (*corev3.TransportSocket, error) {
	t := cfg.Gateway.TLS
	if t == nil {
		return nil, nil
	}
	minVersion := tlsv3.TlsParameters_TLSv1_2
	if t.MinVersion == config.TLSVersion13 {
		minVersion = tlsv3.TlsParameters_TLSv1_3
	}
	common := &tlsv3.CommonTlsContext{
		TlsParams: &tlsv3.TlsParameters{
			TlsMinimumProtocolVersion: minVersion,
			TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
			CipherSuites:              serverCiphers,
		},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: gatewayCertSecret, SdsConfig: adsSource()}},
		AlpnProtocols:                  []string{"h2", "http/1.1"},
	}
	if t.ClientCAFile != "" {
		common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
			ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: clientCASecret, SdsConfig: adsSource()},
		}
	}
	a, err := toAny(&tlsv3.DownstreamTlsContext{
		CommonTlsContext:         common,
		RequireClientCertificate: wrapperspb.Bool(t.RequireClientCert),
	})
	if err != nil {
		return nil, fmt.Errorf("cannot encode the gateway listener's TLS context: %w", err)
	}
	return &corev3.TransportSocket{
		Name:       wellknown.TransportSocketTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a},
	}, nil
}

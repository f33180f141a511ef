package config

import (
	"fmt"
	"path"
	"strings"
)

// ListenerTLS terminates TLS on the gateway listener. Envoy reads the files
// itself and re-reads them when the directory holding each one changes by
// a rename (a Kubernetes Secret update, or `mv` of a new file into place):
// certificates rotate without a restart or a reload.
type ListenerTLS struct {
	// CertFile is the PEM certificate chain Envoy presents to clients.
	// Required.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile. Required. It is read by
	// Envoy only: Streamgate never loads it.
	KeyFile string `yaml:"key_file"`
	// ClientCAFile, when set, turns on client certificates: a certificate a
	// client presents must chain to one of these PEM CAs, and a verified
	// one can authenticate the request (auth.tenants[].client_certificates).
	ClientCAFile string `yaml:"client_ca_file"`
	// RequireClientCert refuses the handshake of a client with no valid
	// certificate (default false: such clients use API keys or JWTs).
	// Needs client_ca_file.
	RequireClientCert bool `yaml:"require_client_cert"`
	// MinVersion is the lowest TLS version accepted: "1.2" (default) or
	// "1.3".
	MinVersion string `yaml:"min_version"`
}

// TLS versions gateway.tls.min_version accepts.
const (
	TLSVersion12 = "1.2"
	TLSVersion13 = "1.3"
)

// WantsClientCerts reports whether the listener asks clients for
// certificates, so the ext_proc filter must pass their identities on.
func (c *Config) WantsClientCerts() bool {
	return c.Gateway.TLS != nil && c.Gateway.TLS.ClientCAFile != ""
}

func (v *validator) listenerTLS(c *Config) {
	t := c.Gateway.TLS
	if t == nil {
		for i, tn := range tenants(c) {
			if len(tn.ClientCertificates) > 0 {
				v.at(fmt.Sprintf("$.auth.tenants[%d].client_certificates", i), "tenant %q: client_certificates need gateway.tls with a client_ca_file", tn.Name)
			}
		}
		return
	}
	const p = "$.gateway.tls"
	if t.CertFile == "" {
		v.at(p+".cert_file", "gateway.tls needs cert_file, the PEM certificate chain the gateway presents")
	}
	if t.KeyFile == "" {
		v.at(p+".key_file", "gateway.tls needs key_file, the PEM private key of cert_file")
	}
	if t.RequireClientCert && t.ClientCAFile == "" {
		v.at(p+".require_client_cert", "require_client_cert needs client_ca_file, the CAs client certificates must chain to")
	}
	switch t.MinVersion {
	case "", TLSVersion12, TLSVersion13:
	default:
		v.at(p+".min_version", "min_version %q is not supported; use 1.2 or 1.3", t.MinVersion)
	}
	for i, tn := range tenants(c) {
		if len(tn.ClientCertificates) > 0 && t.ClientCAFile == "" {
			v.at(fmt.Sprintf("$.auth.tenants[%d].client_certificates", i), "tenant %q: client_certificates need gateway.tls.client_ca_file", tn.Name)
		}
	}
}

// tenants are c's tenants, none without auth.
func tenants(c *Config) []Tenant {
	if c.Auth == nil {
		return nil
	}
	return c.Auth.Tenants
}

// ClientCertificate matches the verified certificate of a client, by
// exactly one of its fields.
type ClientCertificate struct {
	// URISAN matches the certificate's first URI SAN, e.g. a SPIFFE ID
	// "spiffe://prod.example/ns/acme/sa/app"; a path.Match glob ("*" does
	// not cross "/").
	URISAN string `yaml:"uri_san"`
	// DNSSAN matches the certificate's first DNS SAN; a path.Match glob.
	DNSSAN string `yaml:"dns_san"`
	// Subject matches the certificate's subject exactly, as Envoy renders
	// it (RFC 2253: "CN=app,O=Acme").
	Subject string `yaml:"subject"`
}

func (v *validator) clientCertificates(p string, t Tenant) {
	for k, cc := range t.ClientCertificates {
		cp := fmt.Sprintf("%s.client_certificates[%d]", p, k)
		set := 0
		for _, f := range []string{cc.URISAN, cc.DNSSAN, cc.Subject} {
			if f != "" {
				set++
			}
		}
		if set != 1 {
			v.at(cp, "tenant %q: a client certificate entry names exactly one of uri_san, dns_san and subject", t.Name)
			continue
		}
		for _, g := range []string{cc.URISAN, cc.DNSSAN} {
			if _, err := path.Match(g, ""); err != nil {
				v.at(cp, "tenant %q: bad glob %q: %v", t.Name, g, err)
			}
		}
		if strings.ContainsAny(cc.Subject, "\n\r") {
			v.at(cp+".subject", "tenant %q: a subject is one line", t.Name)
		}
	}
}

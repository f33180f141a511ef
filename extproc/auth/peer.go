package auth

import (
	"path"

	"github.com/streamgate/streamgate/config"
)

// Peer is the identity of the client certificate Envoy verified for a
// request (gateway.tls.client_ca_file): its first URI SAN (a SPIFFE ID),
// first DNS SAN and subject, each "" when absent. The zero Peer presented
// no certificate.
type Peer struct {
	URISAN, DNSSAN, Subject string
}

// certRule ties certificates matching one config entry to a tenant.
type certRule struct {
	match  config.ClientCertificate
	tenant *Tenant
}

// certRules lists every tenant's client_certificates entries in config
// order: the first match names the tenant.
func certRules(cfg *config.Auth, tenants map[string]*Tenant) []certRule {
	var out []certRule
	for _, tc := range cfg.Tenants {
		for _, cc := range tc.ClientCertificates {
			out = append(out, certRule{match: cc, tenant: tenants[tc.Name]})
		}
	}
	return out
}

func (r *certRule) matches(p Peer) bool {
	switch {
	case r.match.URISAN != "":
		return globMatch(r.match.URISAN, p.URISAN)
	case r.match.DNSSAN != "":
		return globMatch(r.match.DNSSAN, p.DNSSAN)
	default:
		return p.Subject != "" && r.match.Subject == p.Subject
	}
}

func globMatch(g, s string) bool {
	if s == "" {
		return false
	}
	ok, _ := path.Match(g, s)
	return ok
}

// IsMissing reports whether err is ParseCredential's refusal of a request
// that presents no credential header at all.
func IsMissing(err error) bool {
	return err == errMissing
}

var errUnknownPeer = unauthenticated("The client certificate is not tied to a tenant. Send an API key in an 'Authorization: Bearer KEY' header.", "client certificate matches no tenant")

// AuthenticatePeer ties a request that presents no API key or JWT to the
// tenant its verified client certificate names: the first
// client_certificates entry, in config order, that matches. It never logs
// or returns the certificate's fields.
func (a *Authenticator) AuthenticatePeer(p Peer) (*Tenant, error) {
	for i := range a.certs {
		if a.certs[i].matches(p) {
			return a.certs[i].tenant, nil
		}
	}
	return nil, errUnknownPeer
}

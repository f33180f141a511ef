package auth

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAuthenticatePeer: a verified client certificate names the tenant of
// the first client_certificates entry it matches, by URI SAN glob, DNS
// SAN glob or exact subject; an empty field never matches; a certificate
// matching nothing is refused with 401 and a message naming no field.
func TestAuthenticatePeer(t *testing.T) {
	a := newAuth(t, `gateway:
  tls: {cert_file: /c, key_file: /k, client_ca_file: /ca}
auth:
  tenants:
    - name: svc
      models: ["*"]
      client_certificates:
        - {uri_san: "spiffe://prod/ns/svc/sa/*"}
        - {subject: "CN=batch,O=Acme"}
    - name: web
      models: ["*"]
      client_certificates:
        - {dns_san: "*.web.internal"}
        - {uri_san: "spiffe://prod/ns/*/sa/web"}
`)
	for name, tc := range map[string]struct {
		peer   Peer
		tenant string
	}{
		"SPIFFE ID glob":            {Peer{URISAN: "spiffe://prod/ns/svc/sa/api"}, "svc"},
		"glob does not cross /":     {Peer{URISAN: "spiffe://prod/ns/svc/sa/api/x"}, ""},
		"subject exact":             {Peer{Subject: "CN=batch,O=Acme"}, "svc"},
		"subject differs":           {Peer{Subject: "CN=batch,O=Acme Corp"}, ""},
		"DNS SAN glob":              {Peer{DNSSAN: "a.web.internal", Subject: "CN=a"}, "web"},
		"first tenant in order":     {Peer{URISAN: "spiffe://prod/ns/svc/sa/web"}, "svc"},
		"second tenant's own entry": {Peer{URISAN: "spiffe://prod/ns/shop/sa/web"}, "web"},
		"no match":                  {Peer{URISAN: "spiffe://dev/ns/svc/sa/api", Subject: "CN=x"}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			tn, err := a.AuthenticatePeer(tc.peer)
			if tc.tenant == "" {
				require.Error(t, err)
				var ae *Error
				require.ErrorAs(t, err, &ae)
				assert.Equal(t, ErrUnauthenticated, ae.Kind)
				assert.NotContains(t, ae.Public+ae.Detail, "spiffe")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.tenant, tn.Name)
		})
	}
}

package config

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const listenerTLSBase = `gateway:
  tls: %s
backends: [{name: b, protocol: openai, endpoints: ["127.0.0.1:8000"]}]
models: [{name: m, backend: b}]
auth:
  tenants:
    - name: t
      models: ["*"]
      client_certificates: %s
`

// TestListenerTLSValidation: gateway.tls needs its certificate and key,
// client certificates need a client CA, and each client_certificates
// entry names exactly one field with a valid glob.
func TestListenerTLSValidation(t *testing.T) {
	for name, tc := range map[string]struct{ tls, certs, want string }{
		"complete":                  {tls: `{cert_file: /c, key_file: /k, client_ca_file: /ca, require_client_cert: true, min_version: "1.3"}`, certs: `[{uri_san: "spiffe://p/ns/*/sa/app"}]`},
		"no certs, no CA":           {tls: `{cert_file: /c, key_file: /k}`, certs: `[]`},
		"no cert_file":              {tls: `{key_file: /k}`, certs: `[]`, want: "needs cert_file"},
		"no key_file":               {tls: `{cert_file: /c}`, certs: `[]`, want: "needs key_file"},
		"required without a CA":     {tls: `{cert_file: /c, key_file: /k, require_client_cert: true}`, certs: `[]`, want: "require_client_cert needs client_ca_file"},
		"TLS 1.1":                   {tls: `{cert_file: /c, key_file: /k, min_version: "1.1"}`, certs: `[]`, want: "use 1.2 or 1.3"},
		"certificates without a CA": {tls: `{cert_file: /c, key_file: /k}`, certs: `[{dns_san: a.example}]`, want: "need gateway.tls.client_ca_file"},
		"certificates without tls":  {tls: `null`, certs: `[{dns_san: a.example}]`, want: "need gateway.tls with a client_ca_file"},
		"two fields in one entry":   {tls: `{cert_file: /c, key_file: /k, client_ca_file: /ca}`, certs: `[{dns_san: a, subject: "CN=a"}]`, want: "exactly one of"},
		"no field":                  {tls: `{cert_file: /c, key_file: /k, client_ca_file: /ca}`, certs: `[{}]`, want: "exactly one of"},
		"bad glob":                  {tls: `{cert_file: /c, key_file: /k, client_ca_file: /ca}`, certs: `[{uri_san: "spiffe://[x"}]`, want: "bad glob"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("tls.yaml", []byte(fmt.Sprintf(listenerTLSBase, tc.tls, tc.certs)))
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestCheckSourcesReadsListenerTLSFiles: validate finds a missing
// certificate, key or CA file before a start does.
func TestCheckSourcesReadsListenerTLSFiles(t *testing.T) {
	cfg, err := Parse("tls.yaml", []byte(fmt.Sprintf(listenerTLSBase, `{cert_file: /nonexistent/c, key_file: /nonexistent/k, client_ca_file: /nonexistent/ca}`, `[]`)))
	require.NoError(t, err)
	err = cfg.CheckSources()
	require.Error(t, err)
	for _, f := range []string{"cert_file", "key_file", "client_ca_file"} {
		assert.Contains(t, err.Error(), "gateway.tls."+f+": file")
	}
}

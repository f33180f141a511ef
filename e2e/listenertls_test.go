package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/extproc/auth"
)

// testCA issues certificates for the TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf certificate and its key as PEM, and as a tls.Certificate.
func (ca *testCA) issue(t *testing.T, serial int64, cn string, uris []string, server bool) (certPEM, keyPEM []byte, pair tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn, Organization: []string{"E2E"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	for _, u := range uris {
		parsed, err := url.Parse(u)
		require.NoError(t, err)
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	pair, err = tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	return certPEM, keyPEM, pair
}

// replaceFile writes data beside name and renames it into place, as a
// certificate rotation does.
func replaceFile(t *testing.T, name string, data []byte) {
	t.Helper()
	tmp := name + ".new"
	require.NoError(t, os.WriteFile(tmp, data, 0o600))
	require.NoError(t, os.Rename(tmp, name))
}

const tlsGatewayConfig = `gateway:
  listen: {{.Gateway}}
  tls:
    cert_file: CERTDIR/tls.crt
    key_file: CERTDIR/tls.key
    client_ca_file: CERTDIR/ca.crt
    REQUIRE
extproc:
  listen: {{.ExtProc}}
xds:
  listen: {{.XDS}}
envoy:
  admin: {{.Admin}}
metrics:
  listen: {{.Metrics}}
` + twoBackends + `models:
  - name: model-a
    backend: backend-a
auth:
  tenants:
    - name: acme
      models: ["*"]
      api_keys: [{name: ci, hash: %s}]
    - name: svc
      models: ["*"]
      client_certificates:
        - uri_san: "spiffe://e2e.test/ns/svc/sa/*"
`

const e2eKeyTLS = "sk-e2e-tls-4f1c9a"

// TestListenerTLS: the gateway listener terminates TLS 1.2+ with ALPN h2,
// verifies client certificates against the configured CA, takes a
// verified certificate's SPIFFE ID as the tenant of a request without an
// API key, refuses an unmapped one with 401, and serves a rotated
// certificate without a restart.
func TestListenerTLS(t *testing.T) {
	ca, other := newTestCA(t, "e2e-ca"), newTestCA(t, "stranger-ca")
	dir := t.TempDir()
	srvCert, srvKey, _ := ca.issue(t, 100, "gateway", nil, true)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tls.crt"), srvCert, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tls.key"), srvKey, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.crt"), ca.pem, 0o600))
	_, _, svcCert := ca.issue(t, 200, "svc-app", []string{"spiffe://e2e.test/ns/svc/sa/app"}, false)
	_, _, unmapped := ca.issue(t, 201, "other-app", []string{"spiffe://e2e.test/ns/other/sa/app"}, false)
	_, _, foreign := other.issue(t, 300, "svc-app", []string{"spiffe://e2e.test/ns/svc/sa/app"}, false)

	clientWith := func(certs []tls.Certificate, maxVersion uint16) *http.Client {
		tc := &tls.Config{RootCAs: ca.pool, MaxVersion: maxVersion}
		if len(certs) > 0 { // sent even when the server's CA list does not name its issuer
			tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
		}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}}
	}
	cfg := strings.NewReplacer("CERTDIR", dir, "REQUIRE", "require_client_cert: false").Replace(fmt.Sprintf(tlsGatewayConfig, auth.HashKey(e2eKeyTLS)))
	g := startTLSGateway(t, cfg, clientWith(nil, 0))

	chat := func(c *http.Client, key string) (*http.Response, error) {
		req, err := http.NewRequest(http.MethodPost, g.gateway+"/v1/chat/completions", strings.NewReader(string(chatBody("model-a", false, "hi"))))
		require.NoError(t, err)
		if key != "" {
			req.Header.Set("authorization", "Bearer "+key)
		}
		return c.Do(req)
	}
	tenantOf := func(resp *http.Response) any {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return accessLine(t, g, resp.Header.Get("x-request-id"))["tenant"]
	}

	t.Run("API key over TLS, HTTP/2 by ALPN", func(t *testing.T) {
		resp, err := chat(clientWith(nil, 0), e2eKeyTLS)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "HTTP/2.0", resp.Proto)
		assert.Equal(t, "acme", tenantOf(resp))
	})
	t.Run("TLS 1.1 is refused", func(t *testing.T) {
		_, err := chat(clientWith(nil, tls.VersionTLS11), e2eKeyTLS)
		require.Error(t, err)
	})
	t.Run("a mapped client certificate is the tenant", func(t *testing.T) {
		resp, err := chat(clientWith([]tls.Certificate{svcCert}, 0), "")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "svc", tenantOf(resp))
	})
	t.Run("an API key wins over the certificate", func(t *testing.T) {
		resp, err := chat(clientWith([]tls.Certificate{svcCert}, 0), e2eKeyTLS)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "acme", tenantOf(resp))
	})
	t.Run("an unmapped certificate without a key is 401", func(t *testing.T) {
		resp, err := chat(clientWith([]tls.Certificate{unmapped}, 0), "")
		require.NoError(t, err)
		msg := openAIErrorMessage(t, resp, http.StatusUnauthorized, "invalid_api_key")
		assert.Contains(t, msg, "not tied to a tenant")
		assert.NotContains(t, g.logs.String(), "ns/other", "certificate fields are not logged")
	})
	t.Run("a certificate of another CA fails the handshake", func(t *testing.T) {
		_, err := chat(clientWith([]tls.Certificate{foreign}, 0), "")
		require.Error(t, err)
	})
	t.Run("a rotated certificate is served without a restart", func(t *testing.T) {
		newCert, newKey, _ := ca.issue(t, 101, "gateway", nil, true)
		replaceFile(t, filepath.Join(dir, "tls.key"), newKey)
		replaceFile(t, filepath.Join(dir, "tls.crt"), newCert)
		require.Eventually(t, func() bool {
			conn, err := tls.Dial("tcp", strings.TrimPrefix(g.gateway, "https://"), &tls.Config{RootCAs: ca.pool})
			if err != nil {
				return false
			}
			defer conn.Close()
			return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64() == 101
		}, 10*time.Second, 50*time.Millisecond, "Envoy still presents the old certificate")
	})

	// require_client_cert: no certificate, no handshake.
	strict := startTLSGateway(t, strings.Replace(cfg, "require_client_cert: false", "require_client_cert: true", 1), clientWith([]tls.Certificate{svcCert}, 0))
	_, err := clientWith(nil, 0).Get(strict.gateway + "/v1/models")
	require.Error(t, err, "a client without a certificate must not complete the handshake")
	resp, err := clientWith([]tls.Certificate{svcCert}, 0).Get(strict.gateway + "/v1/models")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// startTLSGateway runs a gateway whose listener terminates TLS; the
// harness reaches it with client.
func startTLSGateway(t *testing.T, configTemplate string, client *http.Client) *env {
	t.Helper()
	e := &env{logs: &syncBuffer{}, done: make(chan error, 1), backendA: gw.backendA, backendB: gw.backendB, client: client}
	err := e.start(configTemplate)
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			t.Logf("---- gateway logs ----\n%s", e.logs.String())
		}
	})
	require.NoError(t, err)
	return e
}

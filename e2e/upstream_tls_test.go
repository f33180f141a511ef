package e2e

import (
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakellm"
)

// upstreamTLSConfig puts one TLS backend (a self-signed certificate naming
// example.com and 127.0.0.1) behind four backends that differ only in how
// they check it.
const upstreamTLSConfig = `backends:
  - name: tls-system
    protocol: openai
    endpoints: [%[1]s]
    tls: {sni: example.com}
    credential: {header: authorization, env: E2E_UPSTREAM_SECRET}
  - name: tls-wrong-name
    protocol: openai
    endpoints: [%[1]s]
    tls: {sni: backend.internal, ca_file: %[2]s}
    credential: {header: authorization, env: E2E_UPSTREAM_SECRET}
  - name: tls-verified
    protocol: openai
    endpoints: [%[1]s]
    tls: {sni: example.com, ca_file: %[2]s}
    credential: {header: authorization, env: E2E_UPSTREAM_SECRET}
  - name: tls-skip
    protocol: openai
    endpoints: [%[1]s]
    tls: {sni: backend.internal, insecure_skip_verify: true}
    credential: {header: authorization, env: E2E_UPSTREAM_SECRET}
models:
  - {name: m-system, backend: tls-system}
  - {name: m-wrong-name, backend: tls-wrong-name}
  - {name: m-verified, backend: tls-verified}
  - {name: m-skip, backend: tls-skip}
`

// TestUpstreamTLSVerifiesBackend is finding 8: a backend whose certificate
// does not chain to the trusted CA (system roots by default) or does not
// name the SNI never gets a request, so never sees the upstream
// credential; with its CA and the right name it works; the explicit
// opt-out works and is warned about.
func TestUpstreamTLSVerifiesBackend(t *testing.T) {
	var mu sync.Mutex
	var seen []string // Authorization headers the backend received
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("authorization"))
		mu.Unlock()
		fakellm.New(fakellm.Options{Name: "tls"}).ServeHTTP(w, r)
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "backend.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))
	t.Setenv("E2E_UPSTREAM_SECRET", "upstream-secret")
	e := startGateway(t, listeners+fmt.Sprintf(upstreamTLSConfig, strings.TrimPrefix(srv.URL, "https://"), ca))

	for name, tc := range map[string]struct {
		model string
		ok    bool
	}{
		"self-signed, system roots": {model: "m-system"},
		"trusted CA, wrong name":    {model: "m-wrong-name"},
		"trusted CA, right name":    {model: "m-verified", ok: true},
		"insecure_skip_verify":      {model: "m-skip", ok: true},
	} {
		t.Run(name, func(t *testing.T) {
			mu.Lock()
			before := len(seen)
			mu.Unlock()
			resp, err := postTo(t.Context(), e, []byte(`{"model":"`+tc.model+`","messages":[{"role":"user","content":"hi"}]}`), nil)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			mu.Lock()
			got := seen[before:]
			mu.Unlock()
			if !tc.ok {
				assert.Contains(t, []int{http.StatusBadGateway, http.StatusServiceUnavailable}, resp.StatusCode, "%s", body)
				assert.Empty(t, got, "the backend never sees the request nor its credential")
				return
			}
			assert.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
			assert.Equal(t, []string{"Bearer upstream-secret"}, got)
		})
	}
	assert.Contains(t, e.logs.String(), `tls.insecure_skip_verify is on`, "the opt-out is warned about at start")
}

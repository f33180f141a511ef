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

// openAISaaSConfig is an OpenAI platform backend as for api.openai.com:
// TLS verified against the server name, HTTP/2, a bearer key, the
// organization and project headers. %[1]s: the server, %[2]s: its CA.
const openAISaaSConfig = `backends:
  - name: openai
    protocol: openai
    endpoints: [%[1]s]
    tls: {sni: example.com, ca_file: %[2]s}
    http2: true
    credential: {header: authorization, env: E2E_OPENAI_KEY}
    openai: {organization: org-e2e, project: proj_e2e}
models:
  - {name: gpt, backend: openai, upstream_model: gpt-4o-mini}
`

// TestOpenAIPlatformOverTLS: what a hosted OpenAI-compatible API needs
// arrives: the TLS server name as Host (the client's Host would not route
// at the provider), HTTP/2 negotiated by ALPN, the bearer key, the
// OpenAI-Organization and OpenAI-Project headers; streams pass.
func TestOpenAIPlatformOverTLS(t *testing.T) {
	type seen struct{ host, proto, auth, org, project string }
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, seen{r.Host, r.Proto, r.Header.Get("Authorization"), r.Header.Get("OpenAI-Organization"), r.Header.Get("OpenAI-Project")})
		mu.Unlock()
		fakellm.New(fakellm.Options{Name: "saas"}).ServeHTTP(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "saas.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))
	t.Setenv("E2E_OPENAI_KEY", "sk-e2e")
	e := startGateway(t, listeners+fmt.Sprintf(openAISaaSConfig, strings.TrimPrefix(srv.URL, "https://"), ca))

	resp, err := postTo(t.Context(), e, []byte(`{"model":"gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}`), nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.Contains(t, string(body), "data: [DONE]")
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 1)
	assert.Equal(t, seen{"example.com", "HTTP/2.0", "Bearer sk-e2e", "org-e2e", "proj_e2e"}, got[0])
}

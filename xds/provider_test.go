package xds

import (
	"strings"
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBedrockRouteSendsSignedHost: Envoy must send a bedrock backend's
// requests with the host their SigV4 signature covers, whatever the
// client's :authority; other backends keep the client's.
func TestBedrockRouteSendsSignedHost(t *testing.T) {
	cfg := parse(t, `backends:
  - name: br
    protocol: bedrock
    endpoints: [127.0.0.1:9443]
    aws: {region: eu-central-1}
  - name: br2
    protocol: bedrock
    endpoints: [127.0.0.2:9443]
    aws: {region: eu-central-1}
  - name: o
    protocol: openai
    endpoints: [127.0.0.1:8000]
models:
  - {name: m, backend: br, fallbacks: [br2]}
  - {name: n, backend: o}
`)
	rc, err := routeConfig(cfg)
	require.NoError(t, err)
	hosts := map[string]string{}
	for _, r := range rc.GetVirtualHosts()[0].GetRoutes() {
		hosts[r.GetName()] = r.GetRoute().GetHostRewriteLiteral()
	}
	assert.Equal(t, "bedrock-runtime.eu-central-1.amazonaws.com", hosts["backend_br"])
	assert.Equal(t, "bedrock-runtime.eu-central-1.amazonaws.com", hosts["backend_br2"])
	assert.Empty(t, hosts["backend_o"])
	found := false
	for name, h := range hosts {
		if strings.HasPrefix(name, "backend_streamgate_failover_") {
			assert.Equal(t, "bedrock-runtime.eu-central-1.amazonaws.com", h, "failover route %s", name)
			found = true
		}
	}
	assert.True(t, found, "a failover route exists: %v", hosts)
}

// TestOpenAIPlatformRoute: a TLS backend named by DNS gets its server name
// as Host (hosted APIs route on it), the organization and project headers,
// and ALPN h2 when it speaks HTTP/2.
func TestOpenAIPlatformRoute(t *testing.T) {
	cfg := parse(t, `backends:
  - name: openai
    protocol: openai
    endpoints: [api.openai.com:443]
    tls: {}
    http2: true
    openai: {organization: org-123, project: proj_abc}
  - name: local
    protocol: openai
    endpoints: [127.0.0.1:8000]
models:
  - {name: m, backend: openai}
  - {name: n, backend: local}
`)
	rc, err := routeConfig(cfg)
	require.NoError(t, err)
	for _, r := range rc.GetVirtualHosts()[0].GetRoutes() {
		switch r.GetName() {
		case "backend_openai":
			assert.Equal(t, "api.openai.com", r.GetRoute().GetHostRewriteLiteral())
			hs := map[string]string{}
			for _, h := range r.GetRequestHeadersToAdd() {
				hs[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
			}
			assert.Equal(t, map[string]string{"openai-organization": "org-123", "openai-project": "proj_abc"}, hs)
		case "backend_local":
			assert.Empty(t, r.GetRoute().GetHostRewriteLiteral())
			assert.Empty(t, r.GetRequestHeadersToAdd())
		}
	}
	c, err := backendCluster(cfg.Backend("openai"))
	require.NoError(t, err)
	var tc tlsv3.UpstreamTlsContext
	require.NoError(t, c.GetTransportSocket().GetTypedConfig().UnmarshalTo(&tc))
	assert.Equal(t, []string{"h2"}, tc.GetCommonTlsContext().GetAlpnProtocols())
	assert.Equal(t, "api.openai.com", tc.GetSni())
}

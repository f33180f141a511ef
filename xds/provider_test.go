package xds

import (
	"testing"

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
		if name != "backend_br" && name != "backend_br2" && name != "backend_o" && name != "unrouted" {
			assert.Equal(t, "bedrock-runtime.eu-central-1.amazonaws.com", h, "failover route %s", name)
			found = true
		}
	}
	assert.True(t, found, "a failover route exists: %v", hosts)
}

package config

import (
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const tlsBackend = `backends:
  - name: a
    protocol: openai
    endpoints: [vllm.internal:443]
    tls: %s
models:
  - {name: m, backend: a}
`

// TestUpstreamTLSAlwaysVerifies: a backend with tls and no ca_file is
// verified against the system bundle, and only insecure_skip_verify turns
// verification off, with a warning.
func TestUpstreamTLSAlwaysVerifies(t *testing.T) {
	bundle := t.TempDir() + "/ca.pem"
	require.NoError(t, os.WriteFile(bundle, []byte("x"), 0o600))
	for name, tc := range map[string]struct {
		tls, env  string
		wantCA    string
		wantWarn  bool
		wantError string
	}{
		"system bundle":        {tls: `{sni: vllm.internal}`, env: bundle, wantCA: bundle},
		"ca_file":              {tls: `{ca_file: ` + bundle + `}`, env: "/nonexistent", wantCA: bundle},
		"no bundle anywhere":   {tls: `{}`, env: "", wantError: "no system CA bundle found"},
		"insecure_skip_verify": {tls: `{insecure_skip_verify: true}`, env: "", wantWarn: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("SSL_CERT_FILE", tc.env)
			saved := systemCABundles
			systemCABundles = []string{"/nonexistent/ca.pem"}
			defer func() { systemCABundles = saved }()
			cfg, err := Parse("tls.yaml", []byte(fmt.Sprintf(tlsBackend, tc.tls)))
			if tc.wantError != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantError)
				return
			}
			require.NoError(t, err)
			b := cfg.Backend("a")
			assert.Equal(t, tc.wantCA, b.TLS.TrustedCA())
			assert.Equal(t, "vllm.internal", b.ServerName())
			if tc.wantWarn {
				require.Len(t, cfg.Warnings(), 1)
				assert.Contains(t, cfg.Warnings()[0], "insecure_skip_verify")
			} else {
				assert.Empty(t, cfg.Warnings())
			}
		})
	}
}

func TestEdgeDefaults(t *testing.T) {
	cfg, err := Parse("d.yaml", []byte(`backends: [{name: a, protocol: openai, endpoints: ["127.0.0.1:1"]}]
models: [{name: m, backend: a}]
`))
	require.NoError(t, err)
	assert.Equal(t, DefaultMaxConcurrentStreams, cfg.Gateway.MaxConcurrentStreams)
	assert.Equal(t, DefaultRequestHeadersTimeout, cfg.Gateway.RequestHeadersTimeout)
	assert.Equal(t, DefaultRequestBodyTimeout, cfg.Gateway.RequestBodyTimeout)
	assert.Equal(t, int64(DefaultMaxHeapBytes), cfg.Envoy.MaxHeapBytes)
}

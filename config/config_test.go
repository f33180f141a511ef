package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadValid(t *testing.T) {
	cfg, err := Load("testdata/valid/full.yaml")
	require.NoError(t, err)
	assert.Equal(t, "unix:/tmp/streamgate.sock", cfg.ExtProc.Listen)
	assert.Equal(t, 2*time.Minute, cfg.Gateway.StreamIdleTimeout)
	assert.Equal(t, 45*time.Second, cfg.Gateway.DrainTimeout)
	assert.Equal(t, 64, cfg.Gateway.MaxJSONDepth)
	assert.Equal(t, DefaultXDSListen, cfg.XDS.Listen)
	assert.Equal(t, "other", cfg.Models[1].UpstreamModel, "upstream model defaults to the public name")
	assert.Equal(t, DefaultConnectTimeout, cfg.Backends[0].ConnectTimeout)
	require.NotNil(t, cfg.Backend("vllm-a"))
	assert.Nil(t, cfg.Backend("missing"))
}

// TestLoadInvalid runs every file in testdata/invalid; each file's first line
// names the error it must produce ("# want: ...").
func TestLoadInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			first, _, _ := strings.Cut(string(data), "\n")
			want, ok := strings.CutPrefix(first, "# want: ")
			require.True(t, ok, "first line must be '# want: ...'")
			_, err = Load(f)
			require.Error(t, err)
			assert.Contains(t, err.Error(), want)
			assert.NotEmpty(t, Problems(err))
		})
	}
}

func TestAllProblemsReportedAtOnce(t *testing.T) {
	src := `backends:
  - name: a
    protocol: openai
    endpoints: [nope]
models:
  - name: m
    backend: b
`
	_, err := Parse("multi.yaml", []byte(src))
	require.Error(t, err)
	ps := Problems(err)
	require.Len(t, ps, 2)
	assert.Equal(t, 4, ps[0].Line)
	assert.Equal(t, 7, ps[1].Line)
}

func TestLoadAuth(t *testing.T) {
	cfg, err := Load("testdata/valid/auth.yaml")
	require.NoError(t, err)
	require.NotNil(t, cfg.Auth)
	assert.Equal(t, DefaultTenantHeader, cfg.Auth.TenantHeader)
	is := cfg.Auth.JWT[0]
	assert.Equal(t, DefaultJWTAlgorithms, is.Algorithms)
	assert.Equal(t, DefaultClockSkew, is.ClockSkew)
	assert.Equal(t, DefaultJWKSMinRefreshBetween, is.MinRefreshInterval)
	assert.Equal(t, "org", is.TenantClaim)
	tn := cfg.Auth.Tenant("acme")
	require.NotNil(t, tn)
	assert.Equal(t, int64(4096), tn.MaxTokens)
	require.NotNil(t, tn.APIKeys[0].Expires)
	assert.Equal(t, 2027, tn.APIKeys[0].Expires.Year())
	assert.Equal(t, "VLLM_API_KEY", cfg.Backends[0].Credential.Env)

	open, err := Load("testdata/valid/full.yaml")
	require.NoError(t, err)
	assert.Nil(t, open.Auth, "no auth section: the gateway stays open")
}

// TestMaxJSONDepthDefault: a config that says nothing nests bodies at
// most DefaultMaxJSONDepth deep.
func TestMaxJSONDepthDefault(t *testing.T) {
	cfg, err := Parse("d.yaml", []byte("backends:\n  - {name: a, protocol: openai, endpoints: [\"127.0.0.1:1\"]}\nmodels:\n  - {name: m, backend: a}\n"))
	require.NoError(t, err)
	assert.Equal(t, DefaultMaxJSONDepth, cfg.Gateway.MaxJSONDepth)
}

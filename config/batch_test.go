package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const batchBase = `gateway: {listen: 0.0.0.0:10000}
backends: [{name: b, protocol: openai, endpoints: ["127.0.0.1:8000"]}]
models: [{name: m, backend: b}]
`

func TestBatchSection(t *testing.T) {
	cfg, err := Load(writeBatchConfig(t, batchBase+"batch: {dir: /tmp/sg-batch, credentials: [{name: acme, env: K}]}\n"))
	require.NoError(t, err)
	b := cfg.Batch
	assert.Equal(t, "http://127.0.0.1:10000", b.GatewayURL)
	assert.Equal(t, DefaultBatchListen, b.Listen)
	be := cfg.Backend(BatchBackend)
	require.NotNil(t, be, "the batch service is a built-in http backend")
	assert.Equal(t, ProtocolHTTP, be.Protocol)
	assert.Equal(t, DefaultBatchListen, be.Endpoints[0].Address)
	require.NotNil(t, cfg.Service(BatchService))
	assert.Equal(t, "/v1/batches", cfg.Service(BatchService).PathPrefix)
	assert.Equal(t, "/v1/files", cfg.Service(BatchFilesService).PathPrefix)

	_, err = Load(writeBatchConfig(t, batchBase+"batch: {listen: nope, max_in_flight: -1, credentials: [{name: a}, {name: a, env: X}]}\n"))
	require.Error(t, err)
	for _, want := range []string{"batch needs a dir", "batch listen", "max_in_flight", "exactly one of env and file", "unique name"} {
		assert.Contains(t, err.Error(), want)
	}
	_, err = Load(writeBatchConfig(t, batchBase+"services: [{name: s, backend: b, path_prefix: /v1/files/}]\n"))
	require.Error(t, err, "configured services still may not mount under /v1/")
}

func writeBatchConfig(t *testing.T, text string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "streamgate.yaml")
	require.NoError(t, os.WriteFile(f, []byte(text), 0o600))
	return f
}

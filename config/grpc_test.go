package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGRPCBackendImpliesHTTP2(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte(`backends:
  - name: triton
    protocol: kserve-v2-grpc
    endpoints: [127.0.0.1:8001]
  - name: vllm
    protocol: openai
    endpoints: [127.0.0.1:8000]
models:
  - name: m
    backend: triton
`))
	require.NoError(t, err)
	assert.True(t, cfg.Backend("triton").HTTP2)
	assert.True(t, cfg.Backend("triton").Protocol.IsGRPC())
	assert.False(t, cfg.Backend("vllm").HTTP2)
	assert.False(t, cfg.Backend("vllm").Protocol.IsGRPC())
}

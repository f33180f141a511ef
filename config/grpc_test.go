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

func TestGRPCMethodsValidated(t *testing.T) {
	_, err := Parse("t.yaml", []byte(`backends:
  - name: triton
    protocol: kserve-v2-grpc
    endpoints: [127.0.0.1:8001]
    grpc_methods: [RepositoryIndex, LoadEverything]
  - name: vllm
    protocol: openai
    endpoints: [127.0.0.1:8000]
    grpc_methods: [ModelConfig]
models:
  - {name: m, backend: triton}
`))
	ps := Problems(err)
	require.Len(t, ps, 2, "%v", err)
	assert.Equal(t, 5, ps[0].Line)
	assert.Contains(t, ps[0].Msg, `"LoadEverything" is not a method of inference.GRPCInferenceService`)
	assert.Equal(t, 9, ps[1].Line)
	assert.Contains(t, ps[1].Msg, "grpc_methods applies only to kserve-v2-grpc backends")
}

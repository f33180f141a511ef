package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAnthropicBackend(t *testing.T) {
	src := `backends:
  - name: claude
    protocol: anthropic
    endpoints: [127.0.0.1:8001]
  - name: vllm
    protocol: openai
    endpoints: [127.0.0.1:8000]
models:
  - name: c1
    backend: claude
  - name: c2
    backend: claude
    default_max_tokens: 512
  - name: v
    backend: vllm
`
	cfg, err := Parse("anthropic.yaml", []byte(src))
	require.NoError(t, err)
	assert.Equal(t, ProtocolAnthropic, cfg.Backend("claude").Protocol)
	assert.Equal(t, DefaultAnthropicMaxTokens, cfg.Models[0].DefaultMaxTokens, "Anthropic needs max_tokens: a default applies")
	assert.Equal(t, 512, cfg.Models[1].DefaultMaxTokens)
	assert.Zero(t, cfg.Models[2].DefaultMaxTokens, "OpenAI backends need no default")
}

func TestNegativeDefaultMaxTokens(t *testing.T) {
	src := `backends:
  - name: claude
    protocol: anthropic
    endpoints: [127.0.0.1:8001]
models:
  - name: c1
    backend: claude
    default_max_tokens: -1
`
	_, err := Parse("neg.yaml", []byte(src))
	require.Error(t, err)
	ps := Problems(err)
	require.Len(t, ps, 1)
	assert.Equal(t, 8, ps[0].Line)
	assert.Contains(t, ps[0].Msg, "default_max_tokens")
}

func TestFailoverNeedsOneProtocol(t *testing.T) {
	src := `backends:
  - name: claude
    protocol: anthropic
    endpoints: [127.0.0.1:8001]
  - name: vllm
    protocol: openai
    endpoints: [127.0.0.1:8000]
models:
  - name: m
    backend: claude
    fallbacks: [vllm]
`
	_, err := Parse("failover.yaml", []byte(src))
	require.Error(t, err)
	ps := Problems(err)
	require.Len(t, ps, 1)
	assert.Contains(t, ps[0].Msg, "one protocol")
}

func TestResponsesAPIOnlyOnOpenAIBackends(t *testing.T) {
	src := `backends:
  - name: vllm
    protocol: openai
    responses_api: true
    endpoints: [127.0.0.1:8000]
  - name: claude
    protocol: anthropic
    responses_api: true
    endpoints: [127.0.0.1:8001]
models:
  - name: v
    backend: vllm
`
	_, err := Parse("responses.yaml", []byte(src))
	require.Error(t, err)
	ps := Problems(err)
	require.Len(t, ps, 1, "the openai backend may set it")
	assert.Equal(t, 8, ps[0].Line)
	assert.Contains(t, ps[0].Msg, `backend "claude": responses_api applies to the openai protocol only`)
}

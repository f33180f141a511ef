package config

import (
	"strings"
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

// crossBackends are one backend of each protocol a fallback may name.
const crossBackends = `backends:
  - name: vllm
    protocol: openai
    endpoints: [127.0.0.1:8000]
  - name: claude
    protocol: anthropic
    endpoints: [127.0.0.1:8001]
  - name: bedrock
    protocol: bedrock
    endpoints: [127.0.0.1:8002]
    aws: {region: us-east-1}
  - name: gemini
    protocol: gemini
    endpoints: [127.0.0.1:8003]
    credential: {header: x-goog-api-key, env: HOME}
  - name: ollama
    protocol: ollama
    endpoints: [127.0.0.1:8004]
  - name: picked
    protocol: openai
    endpoints: [127.0.0.1:8005]
    picking: {}
  - name: keyed
    protocol: openai
    endpoints: [127.0.0.1:8006]
    credential: {header: authorization, env: HOME}
models:
`

func TestFallbacksAcrossProtocols(t *testing.T) {
	for name, tc := range map[string]struct {
		model string
		line  int    // of the one problem; 0: valid
		msg   string // in the problem
	}{
		"openai to anthropic, bedrock, gemini": {model: "  - {name: m, backend: vllm, fallbacks: [claude, bedrock, gemini]}"},
		"anthropic back to openai":             {model: "  - {name: m, backend: claude, fallbacks: [vllm]}"},
		"bedrock to gemini":                    {model: "  - {name: m, backend: bedrock, fallbacks: [gemini]}"},
		"credentials differ across protocols":  {model: "  - {name: m, backend: keyed, fallbacks: [vllm, claude]}"},
		"a fallback model per backend": {model: "  - name: m\n    backend: vllm\n    fallbacks: [bedrock]\n" +
			"    fallback_models: {bedrock: anthropic.claude-3-haiku-20240307-v1:0}"},
		"ollama has no translation back": {model: "  - {name: m, backend: vllm, fallbacks: [ollama]}", line: 28,
			msg: `falls back from backend "vllm" (openai) to "ollama" (ollama); failover across protocols works between openai, anthropic, bedrock and gemini backends only`},
		"picking in a mixed chain": {model: "  - {name: m, backend: picked, fallbacks: [claude]}", line: 28,
			msg: `backend "picked" uses picking`},
		"one protocol still needs one credential": {model: "  - {name: m, backend: keyed, fallbacks: [vllm]}", line: 28,
			msg: "different upstream credential"},
		"fallback model of no fallback": {model: "  - name: m\n    backend: vllm\n    fallbacks: [claude]\n    fallback_models: {gemini: g}", line: 31,
			msg: `fallback model for backend "gemini", which is not one of its fallbacks`},
	} {
		t.Run(name, func(t *testing.T) {
			src := crossBackends + strings.ReplaceAll(tc.model, `\n`, "\n") + "\n"
			_, err := Parse("cross.yaml", []byte(src))
			if tc.line == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			ps := Problems(err)
			require.Len(t, ps, 1, "%v", err)
			assert.Equal(t, tc.line, ps[0].Line)
			assert.Contains(t, ps[0].Msg, tc.msg)
		})
	}
}

func TestMixesProtocols(t *testing.T) {
	cfg, err := Parse("cross.yaml", []byte(crossBackends+"  - {name: m, backend: vllm, fallbacks: [claude]}\n"))
	require.NoError(t, err)
	assert.True(t, cfg.MixesProtocols("vllm", []string{"claude"}))
	assert.False(t, cfg.MixesProtocols("vllm", []string{"keyed", "picked"}))
	assert.Equal(t, "x", cfg.Models[0].FallbackModel("claude", "x"))
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

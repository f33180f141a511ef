package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGeminiBackends(t *testing.T) {
	src := `backends:
  - name: gemini
    protocol: gemini
    endpoints: [generativelanguage.googleapis.com:443]
    tls: {}
    credential: {header: x-goog-api-key, env: GEMINI_API_KEY}
  - name: vertex
    protocol: gemini
    endpoints: [us-central1-aiplatform.googleapis.com:443]
    tls: {}
    vertex: {project: my-proj, location: us-central1, credentials_file: /etc/sa.json}
  - name: claude-vertex
    protocol: anthropic
    endpoints: [us-east5-aiplatform.googleapis.com:443]
    tls: {}
    vertex: {project: my-proj, location: us-east5}
models:
  - {name: flash, backend: gemini, upstream_model: gemini-2.5-flash}
  - {name: vflash, backend: vertex, upstream_model: gemini-2.5-flash}
  - {name: vsonnet, backend: claude-vertex, upstream_model: claude-sonnet-4-5@20250929}
`
	cfg, err := Parse("gemini.yaml", []byte(src))
	require.NoError(t, err)
	assert.Equal(t, "generativelanguage.googleapis.com", cfg.Backend("gemini").UpstreamHost())
	assert.Equal(t, "my-proj", cfg.Backend("vertex").Vertex.Project)
	assert.Zero(t, cfg.Models[0].DefaultMaxTokens, "Gemini needs no output cap")
	assert.Equal(t, "us-east5-aiplatform.googleapis.com", cfg.Backend("claude-vertex").UpstreamHost())
	assert.Equal(t, DefaultAnthropicMaxTokens, cfg.Models[2].DefaultMaxTokens, "Claude on Vertex requires max_tokens as Claude does")
}

func TestGeminiProblems(t *testing.T) {
	for name, tc := range map[string]struct{ src, want string }{
		"no credential": {`backends:
  - {name: g, protocol: gemini, endpoints: ["h:443"]}
models: [{name: m, backend: g}]
`, "needs credential {header: x-goog-api-key}"},
		"wrong header": {`backends:
  - {name: g, protocol: gemini, endpoints: ["h:443"], credential: {header: authorization, env: K}}
models: [{name: m, backend: g}]
`, "needs credential {header: x-goog-api-key}"},
		"vertex and key": {`backends:
  - {name: g, protocol: gemini, endpoints: ["h:443"], credential: {header: x-goog-api-key, env: K}, vertex: {project: p, location: l}}
models: [{name: m, backend: g}]
`, "not a static credential"},
		"no location": {`backends:
  - {name: g, protocol: gemini, endpoints: ["h:443"], vertex: {project: p}}
models: [{name: m, backend: g}]
`, "vertex needs project and location"},
		"vertex on openai": {`backends:
  - {name: o, protocol: openai, endpoints: ["h:443"], vertex: {project: p, location: l}}
models: [{name: m, backend: o}]
`, "vertex applies to the gemini and anthropic (Claude on Vertex AI) protocols only"},
		"claude on vertex with a key": {`backends:
  - {name: c, protocol: anthropic, endpoints: ["h:443"], credential: {header: x-api-key, env: K}, vertex: {project: p, location: l}}
models: [{name: m, backend: c}]
`, "not a static credential"},
		"claude on vertex without location": {`backends:
  - {name: c, protocol: anthropic, endpoints: ["h:443"], vertex: {project: p}}
models: [{name: m, backend: c}]
`, "vertex needs project and location"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("gemini.yaml", []byte(tc.src))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestClaudeOnVertexFallback: the Anthropic API and Claude on Vertex AI
// in one chain mix protocols (Vertex's envelope and token differ), so the
// chain is translated and authorized per attempt rather than refused for
// its different credentials.
func TestClaudeOnVertexFallback(t *testing.T) {
	cfg, err := Parse("cv.yaml", []byte(`backends:
  - {name: claude, protocol: anthropic, endpoints: ["h:443"], credential: {header: x-api-key, env: HOME}}
  - {name: cv, protocol: anthropic, endpoints: ["v:443"], vertex: {project: p, location: l}}
models:
  - {name: m, backend: claude, fallbacks: [cv], fallback_models: {cv: "claude-sonnet-4-5@20250929"}}
`))
	require.NoError(t, err)
	assert.True(t, cfg.MixesProtocols("claude", []string{"cv"}))
	assert.True(t, cfg.Backend("cv").ClaudeOnVertex())
	assert.False(t, cfg.Backend("claude").ClaudeOnVertex())
}

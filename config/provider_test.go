package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBedrockBackend(t *testing.T) {
	src := `backends:
  - name: br
    protocol: bedrock
    endpoints: [bedrock-runtime.us-east-1.amazonaws.com:443]
    tls: {}
    aws: {region: us-east-1, profile: prod}
  - name: vpce
    protocol: bedrock
    endpoints: [10.0.0.5:443]
    aws: {region: eu-west-1, host: vpce-1.bedrock-runtime.eu-west-1.vpce.amazonaws.com}
models:
  - name: claude
    backend: br
    upstream_model: anthropic.claude-3-haiku-20240307-v1:0
`
	cfg, err := Parse("bedrock.yaml", []byte(src))
	require.NoError(t, err)
	assert.Equal(t, "bedrock-runtime.us-east-1.amazonaws.com", cfg.Backend("br").UpstreamHost())
	assert.Equal(t, "vpce-1.bedrock-runtime.eu-west-1.vpce.amazonaws.com", cfg.Backend("vpce").UpstreamHost())
	assert.Equal(t, DefaultAnthropicMaxTokens, cfg.Models[0].DefaultMaxTokens, "Converse clients get the Anthropic default cap")
}

func TestBedrockProblems(t *testing.T) {
	for name, tc := range map[string]struct{ src, want string }{
		"no aws block": {`backends:
  - name: br
    protocol: bedrock
    endpoints: [h:443]
models: [{name: m, backend: br}]
`, "needs an aws block"},
		"no region": {`backends:
  - name: br
    protocol: bedrock
    endpoints: [h:443]
    aws: {profile: p}
models: [{name: m, backend: br}]
`, "aws.region is required"},
		"aws on openai": {`backends:
  - name: o
    protocol: openai
    endpoints: [h:443]
    aws: {region: us-east-1}
models: [{name: m, backend: o}]
`, "aws applies to the bedrock protocol only"},
		"static credential": {`backends:
  - name: br
    protocol: bedrock
    endpoints: [h:443]
    aws: {region: us-east-1}
    credential: {header: authorization, env: X}
models: [{name: m, backend: br}]
`, "not a static credential"},
		"fallback to another region": {`backends:
  - name: a
    protocol: bedrock
    endpoints: [h:443]
    aws: {region: us-east-1}
  - name: b
    protocol: bedrock
    endpoints: [h:443]
    aws: {region: us-west-2}
models: [{name: m, backend: a, fallbacks: [b]}]
`, "different upstream credential"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("bedrock.yaml", []byte(tc.src))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

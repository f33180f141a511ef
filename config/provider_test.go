package config

import (
	"strings"
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

func TestAzureBackend(t *testing.T) {
	src := `backends:
  - name: az
    protocol: openai
    endpoints: [res.openai.azure.com:443]
    tls: {}
    credential: {header: api-key, env: AZURE_KEY}
    azure: {api_version: 2024-10-21}
  - name: az-entra
    protocol: openai
    endpoints: [res.openai.azure.com:443]
    tls: {}
    azure: {api_version: 2024-10-21, entra: {tenant_id: t1, client_id: c1, client_secret_file: /run/secret}}
models:
  - {name: m, backend: az, upstream_model: gpt-4o-prod}
`
	cfg, err := Parse("azure.yaml", []byte(src))
	require.NoError(t, err)
	e := cfg.Backend("az-entra").Azure.Entra
	assert.Equal(t, "https://login.microsoftonline.com/t1/oauth2/v2.0/token", e.Endpoint())
	assert.Equal(t, []string{DefaultEntraScope}, e.Scopes())
}

func TestAzureProblems(t *testing.T) {
	for name, tc := range map[string]struct{ src, want string }{
		"no api version": {`backends:
  - {name: az, protocol: openai, endpoints: ["h:443"], azure: {}}
models: [{name: m, backend: az}]
`, "azure.api_version is required"},
		"on anthropic": {`backends:
  - {name: az, protocol: anthropic, endpoints: ["h:443"], azure: {api_version: v}}
models: [{name: m, backend: az}]
`, "azure applies to the openai protocol only"},
		"key and entra": {`backends:
  - {name: az, protocol: openai, endpoints: ["h:443"], credential: {header: api-key, env: K}, azure: {api_version: v, entra: {tenant_id: t, client_id: c, client_secret_env: S}}}
models: [{name: m, backend: az}]
`, "either credential (api-key) or azure.entra"},
		"entra without secret": {`backends:
  - {name: az, protocol: openai, endpoints: ["h:443"], azure: {api_version: v, entra: {tenant_id: t, client_id: c}}}
models: [{name: m, backend: az}]
`, "exactly one of client_secret_env or client_secret_file"},
		"fallback from azure to plain openai": {`backends:
  - {name: az, protocol: openai, endpoints: ["h:443"], azure: {api_version: v}}
  - {name: o, protocol: openai, endpoints: ["h:443"]}
models: [{name: m, backend: az, fallbacks: [o]}]
`, "different upstream credential"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("azure.yaml", []byte(tc.src))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestOpenAIBlockOnlyOnPlatformBackends(t *testing.T) {
	_, err := Parse("o.yaml", []byte(`backends:
  - {name: az, protocol: openai, endpoints: ["h:443"], azure: {api_version: v}, openai: {organization: org-1}}
  - {name: c, protocol: anthropic, endpoints: ["h:443"], openai: {project: p}}
models: [{name: m, backend: az}, {name: n, backend: c}]
`))
	require.Error(t, err)
	assert.Len(t, Problems(err), 2)
	assert.Contains(t, err.Error(), "applies to OpenAI platform backends only")
}

func TestBedrockAPI(t *testing.T) {
	src := `backends:
  - name: claude
    protocol: bedrock
    endpoints: [127.0.0.1:9443]
    aws: {region: us-east-1, api: invoke}
  - name: other
    protocol: bedrock
    endpoints: [127.0.0.1:9444]
    aws: {region: us-east-1, api: invokemodel}
models:
  - {name: c, backend: claude}
`
	_, err := Parse("api.yaml", []byte(src))
	require.Error(t, err)
	ps := Problems(err)
	require.Len(t, ps, 1)
	assert.Equal(t, 9, ps[0].Line)
	assert.Contains(t, ps[0].Msg, `aws.api is converse or invoke, not "invokemodel"`)
	cfg, err := Parse("api.yaml", []byte(strings.Replace(src, "api: invokemodel", "api: converse", 1)))
	require.NoError(t, err)
	assert.True(t, cfg.Backend("claude").AWS.Invoke())
	assert.False(t, cfg.Backend("other").AWS.Invoke())
}

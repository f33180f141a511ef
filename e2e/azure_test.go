package e2e

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakeazure"
)

// azureConfig: gpt-key on an Azure backend taking the api-key, gpt-entra
// on one taking Entra ID tokens from the fake's token endpoint. %[1]s is
// the fake's address.
const azureConfig = listeners + `backends:
  - name: azure-key
    protocol: openai
    endpoints: [%[1]s]
    credential: {header: api-key, env: STREAMGATE_TEST_AZURE_KEY}
    azure: {api_version: 2024-10-21}
  - name: azure-entra
    protocol: openai
    endpoints: [%[1]s]
    azure:
      api_version: 2024-10-21
      entra: {tenant_id: tenant-1, client_id: app-1, client_secret_env: STREAMGATE_TEST_ENTRA_SECRET, token_url: "http://%[1]s/tenant-1/oauth2/v2.0/token"}
models:
  - name: gpt-key
    backend: azure-key
    upstream_model: gpt-4o-prod
  - name: gpt-entra
    backend: azure-entra
    upstream_model: gpt-4o-prod
`

// TestAzureOpenAIWithOpenAISDK: the openai SDK streams chat (with a tool
// call), gets a completion and embeddings through Streamgate from a fake
// Azure OpenAI that checks the deployment path, the api-version and the
// api-key or the Entra ID bearer; one token serves every request.
func TestAzureOpenAIWithOpenAISDK(t *testing.T) {
	py := pythonSDKs(t)
	fake := fakeazure.New(fakeazure.Options{APIKey: "az-resource-key", Deployments: []string{"gpt-4o-prod"}, ClientID: "app-1", ClientSecret: "entra-secret"})
	ts := httptest.NewServer(fake)
	t.Cleanup(ts.Close)
	t.Setenv("STREAMGATE_TEST_AZURE_KEY", "az-resource-key")
	t.Setenv("STREAMGATE_TEST_ENTRA_SECRET", "entra-secret")
	g := startGateway(t, fmt.Sprintf(azureConfig, hostPort(ts.URL)))

	var out map[string]struct {
		StreamFinish           string `json:"stream_finish"`
		StreamTool             string `json:"stream_tool"`
		StreamCompletionTokens int    `json:"stream_completion_tokens"`
		Content                string
		EmbeddingLen           int `json:"embedding_len"`
	}
	runPyArgs(t, py, "azure_client.py", []string{g.gateway, "gpt-key", "gpt-entra"}, &out)
	for _, m := range []string{"gpt-key", "gpt-entra"} {
		r := out[m]
		assert.Equal(t, "tool_calls", r.StreamFinish, m)
		assert.Equal(t, "get_weather", r.StreamTool, m)
		assert.Positive(t, r.StreamCompletionTokens, m)
		assert.NotEmpty(t, r.Content, m)
		assert.Positive(t, r.EmbeddingLen, m)
	}
	paths := fake.Paths()
	require.Len(t, paths, 6)
	for _, p := range paths {
		assert.True(t, strings.HasPrefix(p, "/openai/deployments/gpt-4o-prod/"), p)
		assert.True(t, strings.HasSuffix(p, "?api-version=2024-10-21"), p)
	}
	assert.Equal(t, 1, fake.TokensIssued(), "the Entra token is cached across requests")
}

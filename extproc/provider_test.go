package extproc

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc/auth"
)

// providerProcessor is a processor whose authenticator holds the config's
// upstream signers.
func providerProcessor(t *testing.T, src string) *processor {
	t.Helper()
	p := newTranslationProcessor(t, src)
	cfg, err := config.Parse("test.yaml", []byte(src))
	require.NoError(t, err)
	p.auth, err = auth.New(context.Background(), cfg, auth.Options{})
	require.NoError(t, err)
	return p
}

func upstreamHeaders(t *testing.T, p *processor, body string) map[string]string {
	t.Helper()
	p.handle(requestHeaders("/v1/chat/completions"))
	resp := p.handle(requestBody(body))
	require.Nil(t, resp.GetImmediateResponse(), "refused: %s", resp.GetImmediateResponse().GetBody())
	out := map[string]string{}
	for _, h := range resp.GetRequestBody().GetResponse().GetHeaderMutation().GetSetHeaders() {
		out[h.GetHeader().GetKey()] = string(h.GetHeader().GetRawValue())
	}
	return out
}

// TestBedrockRequestIsSignedAfterTranslation: the body response carries
// the SigV4 headers computed over the translated body and the escaped
// path it sets.
func TestBedrockRequestIsSignedAfterTranslation(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	require.NoError(t, os.WriteFile(creds, []byte("[p]\naws_access_key_id = AKIDUNIT\naws_secret_access_key = secret-unit\naws_session_token = tok-unit\n"), 0o600))
	p := providerProcessor(t, fmt.Sprintf(`backends:
  - {name: br, protocol: bedrock, endpoints: ["127.0.0.1:9"], aws: {region: us-east-1, profile: p, config_files: [%[1]s], credentials_files: [%[1]s]}}
models:
  - {name: claude, backend: br, upstream_model: "anthropic.claude-v2:1"}
`, creds))
	h := upstreamHeaders(t, p, `{"model":"claude","messages":[{"role":"user","content":"hi"}]}`)
	assert.Equal(t, "/model/anthropic.claude-v2%3A1/converse", h[":path"])
	assert.True(t, strings.HasPrefix(h["authorization"], "AWS4-HMAC-SHA256 Credential=AKIDUNIT/"), h["authorization"])
	assert.Contains(t, h["authorization"], "/us-east-1/bedrock/aws4_request")
	assert.Equal(t, "tok-unit", h["x-amz-security-token"])
	assert.Len(t, h["x-amz-content-sha256"], 64)
	assert.NotEmpty(t, h["x-amz-date"])
	assert.NotContains(t, fmt.Sprint(h), "secret-unit")
}

// TestAzureDeploymentPath: a pass-through chat request goes to the
// deployment path with the api-version and without the client's query.
func TestAzureDeploymentPath(t *testing.T) {
	p := providerProcessor(t, `backends:
  - {name: az, protocol: openai, endpoints: ["127.0.0.1:9"], azure: {api_version: 2024-10-21}}
models:
  - {name: gpt, backend: az, upstream_model: gpt-4o-prod}
`)
	h := upstreamHeaders(t, p, `{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`)
	assert.Equal(t, "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21", h[":path"])
}

// TestEntraTokenUnavailable: no token means a 502 before the backend is
// called, naming no secret.
func TestEntraTokenUnavailable(t *testing.T) {
	t.Setenv("SG_UNIT_ENTRA", "s")
	p := providerProcessor(t, `backends:
  - name: az
    protocol: openai
    endpoints: ["127.0.0.1:9"]
    azure: {api_version: v1, entra: {client_id: c, token_url: "http://127.0.0.1:9/token", client_secret_env: SG_UNIT_ENTRA}}
models:
  - {name: gpt, backend: az}
`)
	p.handle(requestHeaders("/v1/chat/completions"))
	resp := p.handle(requestBody(`{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`))
	ir := resp.GetImmediateResponse()
	require.NotNil(t, ir)
	assert.EqualValues(t, 502, ir.GetStatus().GetCode())
	assert.Contains(t, string(ir.GetBody()), "upstream_credentials_unavailable")
}

package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakegemini"
)

// geminiConfig: flash on the Gemini API by key, flash-bad by a wrong key,
// vflash on Vertex AI with a service account key file. %[1]s is the
// fake's address, %[2]s the key file.
const geminiConfig = listeners + `backends:
  - name: gemini
    protocol: gemini
    endpoints: [%[1]s]
    credential: {header: x-goog-api-key, env: STREAMGATE_TEST_GEMINI_KEY}
  - name: gemini-bad
    protocol: gemini
    endpoints: [%[1]s]
    credential: {header: x-goog-api-key, env: STREAMGATE_TEST_GEMINI_BAD_KEY}
  - name: vertex
    protocol: gemini
    endpoints: [%[1]s]
    vertex: {project: sg-project, location: us-central1, credentials_file: %[2]s}
models:
  - {name: flash, backend: gemini, upstream_model: gemini-2.5-flash}
  - {name: flash-bad, backend: gemini-bad, upstream_model: gemini-2.5-flash}
  - {name: vflash, backend: vertex, upstream_model: gemini-2.5-flash}
`

// TestGeminiWithOpenAISDK: the openai SDK streams a chat completion with
// a tool call and answers it through Streamgate to a fake Gemini, by API
// key (Gemini API) and by a service account's OAuth2 token (Vertex AI, the
// fake's token endpoint verifying the signed assertion); usage matches
// Gemini's usageMetadata; RESOURCE_EXHAUSTED and INVALID_ARGUMENT reach
// the SDK as 429 and 400; a wrong API key is a 502 naming the gateway's
// credentials.
func TestGeminiWithOpenAISDK(t *testing.T) {
	py := pythonSDKs(t)
	const email = "streamgate@sg-project.iam.gserviceaccount.com"
	fake := fakegemini.New(fakegemini.Options{APIKey: "gemini-test-key", Project: "sg-project", Location: "us-central1", ClientEmail: email})
	ts := httptest.NewServer(fake)
	t.Cleanup(ts.Close)
	key, pub, err := fakegemini.ServiceAccountKey(email, ts.URL+"/token")
	require.NoError(t, err)
	fake = fakegemini.New(fakegemini.Options{APIKey: "gemini-test-key", Project: "sg-project", Location: "us-central1", ClientEmail: email, PublicKey: pub, TokenURL: ts.URL + "/token"})
	ts.Config.Handler = fake
	keyFile := filepath.Join(t.TempDir(), "sa.json")
	require.NoError(t, os.WriteFile(keyFile, key, 0o600))
	t.Setenv("STREAMGATE_TEST_GEMINI_KEY", "gemini-test-key")
	t.Setenv("STREAMGATE_TEST_GEMINI_BAD_KEY", "not-the-key")
	g := startGateway(t, fmt.Sprintf(geminiConfig, hostPort(ts.URL), keyFile))

	type result struct {
		StreamFinish     string    `json:"stream_finish"`
		StreamContent    string    `json:"stream_content"`
		StreamTool       string    `json:"stream_tool"`
		StreamToolArgs   string    `json:"stream_tool_args"`
		PromptTokens     int       `json:"prompt_tokens"`
		CompletionTokens int       `json:"completion_tokens"`
		CachedTokens     *int      `json:"cached_tokens"`
		Answer           string    `json:"answer"`
		AnswerFinish     string    `json:"answer_finish"`
		RateLimited      *sdkError `json:"rate_limited"`
		Invalid          *sdkError `json:"invalid"`
	}
	var out struct {
		BadKey *sdkError `json:"bad_key"`
		Flash  result    `json:"flash"`
		VFlash result    `json:"vflash"`
	}
	runPyArgs(t, py, "gemini_client.py", []string{g.gateway, "flash-bad", "flash", "vflash"}, &out)
	u := fakegemini.Usage
	for name, r := range map[string]result{"flash": out.Flash, "vflash": out.VFlash} {
		assert.Equal(t, "tool_calls", r.StreamFinish, name)
		assert.Equal(t, "Let me check.", r.StreamContent, name)
		assert.Equal(t, "get_weather", r.StreamTool, name)
		assert.JSONEq(t, `{"city":"Paris"}`, r.StreamToolArgs, name)
		assert.Equal(t, u.Prompt, r.PromptTokens, name+": promptTokenCount, cached tokens included")
		assert.Equal(t, u.Candidates+u.Thoughts, r.CompletionTokens, name+": candidates and thoughts")
		if assert.NotNil(t, r.CachedTokens, name) {
			assert.Equal(t, u.Cached, *r.CachedTokens, name)
		}
		assert.Equal(t, "The weather is sunny.", r.Answer, name)
		assert.Equal(t, "stop", r.AnswerFinish, name)
		requireSDKError(t, r.RateLimited, "RateLimitError", http.StatusTooManyRequests, "Resource has been exhausted")
		requireSDKError(t, r.Invalid, "BadRequestError", http.StatusBadRequest, "invalid argument")
	}
	requireSDKError(t, out.BadKey, "InternalServerError", http.StatusBadGateway, "refused the gateway's credentials: API key not valid")

	assert.Equal(t, 1, fake.TokensIssued(), "one Vertex token serves every request")
	var gem, vertex int
	for _, p := range fake.Paths() {
		switch {
		case p == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse" || p == "/v1beta/models/gemini-2.5-flash:generateContent":
			gem++
		case strings.HasPrefix(p, "/v1/projects/sg-project/locations/us-central1/publishers/google/models/gemini-2.5-flash:"):
			vertex++
		default:
			t.Errorf("unexpected path %s", p)
		}
	}
	assert.Equal(t, 4, gem, "stream, answer, 429, 400 by key")
	assert.Equal(t, 4, vertex, "the same on Vertex AI")
}

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakegemini"
)

// geminiConfig: flash on the Gemini API by key, flash-bad by a wrong key,
// vflash on Vertex AI with a service account key file, vflash-down with
// one whose token endpoint is down. %[1]s is the fake's address, %[2]s
// and %[3]s the key files.
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
  - name: vertex-down
    protocol: gemini
    endpoints: [%[1]s]
    vertex: {project: sg-project, location: us-central1, credentials_file: %[3]s}
models:
  - {name: flash, backend: gemini, upstream_model: gemini-2.5-flash}
  - {name: flash-bad, backend: gemini-bad, upstream_model: gemini-2.5-flash}
  - {name: vflash, backend: vertex, upstream_model: gemini-2.5-flash}
  - {name: vflash-down, backend: vertex-down, upstream_model: gemini-2.5-flash}
telemetry:
  usage: true
  prices: {vflash: {input_per_million: 1000000, output_per_million: 1000000}}
`

// TestGeminiWithOfficialSDKs: the openai SDK streams a chat completion with
// a tool call and answers it through Streamgate to a fake Gemini, by API
// key (Gemini API) and by a service account's OAuth2 token (Vertex AI, the
// fake's token endpoint verifying the signed assertion); usage matches
// Gemini's usageMetadata; RESOURCE_EXHAUSTED and INVALID_ARGUMENT reach
// the SDK as 429 and 400; a wrong API key is a 502 naming the gateway's
// credentials. The anthropic SDK streams a tool use and the openai SDK's
// Responses API a function call from the same fake.
func TestGeminiWithOfficialSDKs(t *testing.T) {
	py := pythonSDKs(t)
	fake, g := startGemini(t)

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
		// The anthropic SDK's stream and the Responses API, from flash.
		Messages struct {
			Events               []string
			StopReason           string           `json:"stop_reason"`
			Text                 string           `json:"text"`
			ToolInput            []map[string]any `json:"tool_input"`
			InputTokens          int              `json:"input_tokens"`
			CacheReadInputTokens int              `json:"cache_read_input_tokens"`
			OutputTokens         int              `json:"output_tokens"`
		}
		Responses struct {
			Status string
			Calls  []struct{ Name, Arguments string }
			Input  int `json:"input_tokens"`
			Output int `json:"output_tokens"`
		}
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
	m := out.Messages
	assert.Equal(t, "tool_use", m.StopReason)
	assert.Equal(t, "Let me check.", m.Text)
	assert.Equal(t, []map[string]any{{"city": "Paris"}}, m.ToolInput)
	assert.Equal(t, u.Prompt-u.Cached, m.InputTokens, "Anthropic input_tokens leave the cached tokens out")
	assert.Equal(t, u.Cached, m.CacheReadInputTokens)
	assert.Equal(t, u.Candidates+u.Thoughts, m.OutputTokens)
	if assert.NotEmpty(t, m.Events) {
		assert.Equal(t, "message_start", m.Events[0])
	}
	assert.Equal(t, "completed", out.Responses.Status)
	if assert.Len(t, out.Responses.Calls, 1) {
		assert.Equal(t, "get_weather", out.Responses.Calls[0].Name)
		assert.JSONEq(t, `{"city":"Paris"}`, out.Responses.Calls[0].Arguments)
	}
	assert.Equal(t, u.Prompt, out.Responses.Input)
	assert.Equal(t, u.Candidates+u.Thoughts, out.Responses.Output)
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
	assert.Equal(t, 6, gem, "stream, answer, 429, 400 by key; Messages and Responses streams")
	assert.Equal(t, 4, vertex, "the same on Vertex AI")
}

// startGemini runs a fake Gemini trusting a fresh service account key and
// a gateway serving geminiConfig from it.
func startGemini(t *testing.T) (*fakegemini.Server, *env) {
	t.Helper()
	fake, addr, keyFile, downFile := startFakeGemini(t)
	t.Setenv("STREAMGATE_TEST_GEMINI_KEY", "gemini-test-key")
	t.Setenv("STREAMGATE_TEST_GEMINI_BAD_KEY", "not-the-key")
	g := startGateway(t, fmt.Sprintf(geminiConfig, addr, keyFile, downFile))
	return fake, g
}

// startFakeGemini runs a fake Gemini (API key gemini-test-key; Vertex AI
// project sg-project in us-central1) and returns it, its address, a
// service account key file its token endpoint trusts and one whose token
// endpoint is down.
func startFakeGemini(t *testing.T) (fake *fakegemini.Server, addr, keyFile, downFile string) {
	t.Helper()
	const email = "streamgate@sg-project.iam.gserviceaccount.com"
	ts := httptest.NewUnstartedServer(nil)
	tokenURL := "http://" + ts.Listener.Addr().String() + "/token"
	key, pub, err := fakegemini.ServiceAccountKey(email, tokenURL)
	require.NoError(t, err)
	fake = fakegemini.New(fakegemini.Options{APIKey: "gemini-test-key", Project: "sg-project", Location: "us-central1", ClientEmail: email, PublicKey: pub, TokenURL: tokenURL})
	ts.Config.Handler = fake
	ts.Start()
	t.Cleanup(ts.Close)
	dir := t.TempDir()
	keyFile, downFile = filepath.Join(dir, "sa.json"), filepath.Join(dir, "sa-down.json")
	require.NoError(t, os.WriteFile(keyFile, key, 0o600))
	// The same key, its token endpoint a port nothing listens on.
	down, _, err := fakegemini.ServiceAccountKey(email, "http://127.0.0.1:1/token")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(downFile, down, 0o600))
	return fake, hostPort(ts.URL), keyFile, downFile
}

// TestGeminiUsageIsMetered: the usage of Gemini's last usageMetadata,
// translated for Chat and Messages clients, streamed or not, is what the
// gateway records (here: the cost at one dollar per token, cached tokens
// priced as input).
func TestGeminiUsageIsMetered(t *testing.T) {
	_, g := startGemini(t)
	for _, tc := range []struct{ path, body string }{
		{"/v1/chat/completions", `{"model":"vflash","stream":true,"messages":[{"role":"user","content":"hi"}]}`},
		{"/v1/chat/completions", `{"model":"vflash","messages":[{"role":"user","content":"hi"}]}`},
		{"/v1/messages", `{"model":"vflash","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}`},
		{"/v1/messages", `{"model":"vflash","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`},
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, g.gateway+tc.path, strings.NewReader(tc.body))
		require.NoError(t, err)
		req.Header.Set("content-type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	}
	u := fakegemini.Usage
	want := float64(4 * (u.Prompt + u.Candidates + u.Thoughts))
	require.Eventually(t, func() bool {
		return sumWhere(scrapeFamilies(t, g), "streamgate_cost_usd_total", "", map[string]string{"model": "vflash"}) == want
	}, 5*time.Second, 50*time.Millisecond, "cost of four requests at $1 a token: %v", want)
}

// TestVertexTokenEndpointDown: no token, no request to Vertex: the client
// gets 502 upstream_credentials_unavailable, the log the cause, no secret.
func TestVertexTokenEndpointDown(t *testing.T) {
	fake, g := startGemini(t)
	resp, err := http.Post(g.gateway+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"vflash-down","messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.Contains(t, string(body), "upstream_credentials_unavailable")
	assert.Empty(t, fake.Paths(), "Vertex is not called without a token")
	assert.NotContains(t, g.logs.String(), "PRIVATE KEY")
}

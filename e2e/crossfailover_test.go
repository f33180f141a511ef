package e2e

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/streamgate/streamgate/examples/fakebedrock"
	"github.com/streamgate/streamgate/examples/fakegemini"
	"github.com/streamgate/streamgate/examples/fakellm"
)

// crossConfig: three models whose primary fails before the first byte and
// whose fallback speaks another protocol. xp-claude: an OpenAI-compatible
// primary (answering 500 when the client asks) falls back to an Anthropic
// backend; xp-bedrock: a primary nobody listens on (connection refused)
// falls back to (the fake) Bedrock, signed for that attempt only;
// xp-reverse: an Anthropic primary falls back to an OpenAI-compatible one.
// xp-gemini and xp-vertex: the OpenAI-compatible primary (500) falls back
// to (the fake) Gemini, by API key and on Vertex AI with a service
// account's OAuth2 token; xp-cvertex to Claude on Vertex AI (an anthropic
// backend with a vertex block), for a Messages client; xp-ant-cvertex from
// the Anthropic API to Claude on Vertex AI. claude-bedrock is a plain Bedrock model (no
// failover). Every model costs
// a dollar a token, so the recorded cost is the metered usage.
const crossConfig = listeners + `backends:
  - name: primary
    protocol: openai
    endpoints: [@PRIMARY@]
    credential: {header: authorization, env: CROSS_PRIMARY_KEY}
  - name: claude
    protocol: anthropic
    endpoints: [@CLAUDE@]
    credential: {header: x-api-key, env: CROSS_CLAUDE_KEY}
  - name: dead
    protocol: openai
    endpoints: [@DEAD@]
  - name: bedrock
    protocol: bedrock
    endpoints: [@BEDROCK@]
    aws: {region: us-east-1, profile: streamgate-test, config_files: [@AWSCONFIG@], credentials_files: [@AWSCREDS@]}
  - name: claude-primary
    protocol: anthropic
    endpoints: [@CPRIMARY@]
  - name: backend-b
    protocol: openai
    endpoints: [{{.BackendB}}]
  - name: gemini
    protocol: gemini
    endpoints: [@GEMINI@]
    credential: {header: x-goog-api-key, env: CROSS_GEMINI_KEY}
  - name: vertex
    protocol: gemini
    endpoints: [@GEMINI@]
    vertex: {project: sg-project, location: us-central1, credentials_file: @VERTEXKEY@}
  - name: claude-vertex
    protocol: anthropic
    endpoints: [@GEMINI@]
    vertex: {project: sg-project, location: us-central1, credentials_file: @VERTEXKEY@}
models:
  - name: xp-claude
    backend: primary
    upstream_model: fo-upstream
    fallbacks: [claude]
    fallback_models: {claude: claude-upstream}
  - name: xp-bedrock
    backend: dead
    fallbacks: [bedrock]
    fallback_models: {bedrock: ` + bedrockModelID + `}
  - name: xp-reverse
    backend: claude-primary
    upstream_model: claude-upstream
    fallbacks: [backend-b]
    fallback_models: {backend-b: openai-upstream}
  - name: claude-bedrock
    backend: bedrock
    upstream_model: ` + bedrockModelID + `
  - name: xp-gemini
    backend: primary
    upstream_model: fo-upstream
    fallbacks: [gemini]
    fallback_models: {gemini: gemini-2.5-flash}
  - name: xp-vertex
    backend: primary
    upstream_model: fo-upstream
    fallbacks: [vertex]
    fallback_models: {vertex: gemini-2.5-pro}
  - name: xp-cvertex
    backend: primary
    upstream_model: fo-upstream
    fallbacks: [claude-vertex]
    fallback_models: {claude-vertex: "claude-sonnet-4-5@20250929"}
  - name: xp-ant-cvertex
    backend: claude-primary
    upstream_model: claude-upstream
    fallbacks: [claude-vertex]
    fallback_models: {claude-vertex: "claude-sonnet-4-5@20250929"}
telemetry:
  usage: true
  prices:
    xp-claude: {input_per_million: 1000000, output_per_million: 1000000}
    xp-bedrock: {input_per_million: 1000000, output_per_million: 1000000}
    xp-reverse: {input_per_million: 1000000, output_per_million: 1000000}
    xp-gemini: {input_per_million: 1000000, output_per_million: 1000000}
    xp-vertex: {input_per_million: 1000000, output_per_million: 1000000}
    xp-cvertex: {input_per_million: 1000000, output_per_million: 1000000}
    xp-ant-cvertex: {input_per_million: 1000000, output_per_million: 1000000}
`

// keyedFake is a fakellm server that answers 401 to requests without its
// key in header, as hosted APIs do.
func keyedFake(t *testing.T, name, header, key string) *killable {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	k := &killable{Server: fakellm.New(fakellm.Options{Name: name}), addr: lis.Addr().String()}
	k.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get(header); got != key {
			http.Error(w, `{"error":{"message":"wrong key","type":"authentication_error"}}`, http.StatusUnauthorized)
			return
		}
		k.Server.ServeHTTP(w, r)
	})}
	go func() { _ = k.srv.Serve(lis) }()
	t.Cleanup(func() { k.srv.Close() })
	return k
}

type crossEnv struct {
	g        *env
	primary  *killable
	claude   *killable
	cprimary *killable
	bedrock  *fakebedrock.Server
	gemini   *fakegemini.Server
}

func startCross(t *testing.T) *crossEnv {
	t.Helper()
	t.Setenv("CROSS_PRIMARY_KEY", "primary-key")
	t.Setenv("CROSS_CLAUDE_KEY", "claude-key")
	t.Setenv("CROSS_GEMINI_KEY", "gemini-test-key")
	c := &crossEnv{
		primary:  keyedFake(t, "primary", "authorization", "Bearer primary-key"),
		claude:   keyedFake(t, "claude", "x-api-key", "claude-key"),
		cprimary: startKillable(t, "claude-primary"),
	}
	var addr, cfgFile, credsFile string
	c.bedrock, addr, cfgFile, credsFile = startFakeBedrock(t)
	var gemAddr, vertexKey string
	c.gemini, gemAddr, vertexKey, _ = startFakeGemini(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := lis.Addr().String()
	require.NoError(t, lis.Close())
	cfg := strings.NewReplacer("@PRIMARY@", c.primary.addr, "@CLAUDE@", c.claude.addr, "@DEAD@", dead, "@BEDROCK@", addr,
		"@AWSCONFIG@", cfgFile, "@AWSCREDS@", credsFile, "@CPRIMARY@", c.cprimary.addr,
		"@GEMINI@", gemAddr, "@VERTEXKEY@", vertexKey).Replace(crossConfig)
	c.g = startGateway(t, cfg)
	return c
}

// crossOut is what cross_client.py prints.
type crossOut struct {
	Stream struct {
		FinishReason string                                 `json:"finish_reason"`
		StopReason   string                                 `json:"stop_reason"`
		ToolCalls    []struct{ ID, Name, Arguments string } `json:"tool_calls"`
		ToolUses     []struct {
			ID, Name string
			Input    map[string]any
		} `json:"tool_uses"`
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		InputTokens      int `json:"input_tokens"`
		OutputTokens     int `json:"output_tokens"`
	}
	Whole struct {
		Content          string
		Text             string
		FinishReason     string `json:"finish_reason"`
		StopReason       string `json:"stop_reason"`
		Model            string
		PromptTokens     int               `json:"prompt_tokens"`
		CompletionTokens int               `json:"completion_tokens"`
		InputTokens      int               `json:"input_tokens"`
		OutputTokens     int               `json:"output_tokens"`
		Headers          map[string]string `json:"headers"`
	}
}

// TestCrossProtocolFailover: with the primary failing before the first
// byte, the official SDKs get their answer (streamed with a tool call, and
// whole) from a fallback of another protocol without noticing: the
// fallback got a request in its own protocol with its own model name and
// credential (the fakes refuse anything else), and the usage the gateway
// recorded is what the fallback reported.
func TestCrossProtocolFailover(t *testing.T) {
	py := pythonSDKs(t)
	c := startCross(t)

	t.Run("openai primary answers, no translation", func(t *testing.T) {
		resp, err := http.Post(c.g.gateway+"/v1/chat/completions", "application/json", strings.NewReader(string(chatBody("xp-claude", false, "hi"))))
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
		assert.Equal(t, "primary", resp.Header.Get(fakellm.HeaderBackend))
		assert.Equal(t, "fo-upstream", resp.Header.Get(fakellm.HeaderReceivedModel))
		assert.Empty(t, resp.Header.Get("x-streamgate-answered-by"), "the backend's name stays inside")
	})

	t.Run("anthropic primary answers, no translation", func(t *testing.T) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, c.g.gateway+"/v1/messages",
			strings.NewReader(`{"model":"xp-reverse","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}`))
		require.NoError(t, err)
		req.Header.Set("content-type", "application/json")
		req.Header.Set("anthropic-version", "2023-06-01")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
		assert.Equal(t, "claude-primary", resp.Header.Get(fakellm.HeaderBackend))
		assert.Equal(t, "claude-upstream", resp.Header.Get(fakellm.HeaderReceivedModel))
	})

	t.Run("a large prompt fails over too", func(t *testing.T) {
		prompt := strings.Repeat("word ", 300_000) // 1.5 MB: above Envoy's default 1 MiB buffers
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, c.g.gateway+"/v1/chat/completions",
			strings.NewReader(`{"model":"xp-claude","max_tokens":5,"messages":[{"role":"user","content":"`+prompt+`"}]}`))
		require.NoError(t, err)
		req.Header.Set("content-type", "application/json")
		req.Header.Set(fakellm.HeaderFail, "500")
		req.Header.Set(fakellm.HeaderFailBackend, "primary")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "%.300s", body)
		assert.Equal(t, "claude", resp.Header.Get(fakellm.HeaderBackend))
		assert.Equal(t, "chat.completion", gjson.GetBytes(body, "object").Str)
	})

	t.Run("refused before anything is sent", func(t *testing.T) {
		before := c.primary.Stats().Requests + c.claude.Stats().Requests
		resp, err := http.Post(c.g.gateway+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"xp-claude","n":2,"messages":[{"role":"user","content":"hi"}]}`))
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Contains(t, string(body), "unsupported_by_backend", "Anthropic, the fallback, cannot carry n: 2")
		assert.Equal(t, before, c.primary.Stats().Requests+c.claude.Stats().Requests)
	})

	models := []string{"xp-claude", "xp-bedrock", "xp-reverse", "xp-gemini", "xp-vertex", "xp-cvertex", "xp-ant-cvertex"}
	before := map[string]float64{}
	for _, m := range models {
		before[m] = costOf(t, c.g, m)
	}
	// One Python run for them all: the SDKs take seconds to import.
	primaryBefore := c.primary.Stats().Requests
	all := map[string]crossOut{}
	runPyArgs(t, py, "cross_client.py", []string{c.g.gateway, "openai:xp-claude:primary", "openai:xp-bedrock", "anthropic:xp-reverse:claude-primary",
		"openai:xp-gemini:primary", "openai:xp-vertex:primary", "anthropic:xp-cvertex:primary",
		"anthropic:xp-ant-cvertex:claude-primary"}, &all)

	t.Run("openai to anthropic", func(t *testing.T) {
		out := all["xp-claude"]
		requireToolCall(t, out, fakellm.FakeToolInput)
		assert.Equal(t, fakellm.FakeToolID, out.Stream.ToolCalls[0].ID, "the Anthropic tool use, translated")
		assert.Equal(t, "claude", out.Whole.Headers[fakellm.HeaderBackend])
		assert.Equal(t, "claude-upstream", out.Whole.Headers[fakellm.HeaderReceivedModel], "the fallback's own model name")
		assert.Equal(t, "claude-upstream", out.Whole.Model, "the model that answered, as translations report it")
		requireCost(t, c.g, "xp-claude", before["xp-claude"], float64(out.Stream.PromptTokens+out.Stream.CompletionTokens+out.Whole.PromptTokens+out.Whole.CompletionTokens))
	})

	t.Run("openai to bedrock", func(t *testing.T) {
		out := all["xp-bedrock"]
		requireToolCall(t, out, fakebedrock.ToolInput)
		assert.Equal(t, fakebedrock.ToolUseID, out.Stream.ToolCalls[0].ID)
		assert.Equal(t, "Echo: Weather in Paris?", out.Whole.Content)
		assert.Zero(t, c.bedrock.Refused(), "every attempt on Bedrock carries a valid signature and nothing else")
		reqs := c.bedrock.Requests()
		require.Len(t, reqs, 2)
		for _, r := range reqs {
			assert.Equal(t, bedrockModelID, r.Model)
		}
		assert.Eventually(t, func() bool { return strings.Contains(c.g.logs.String(), `"backend":"bedrock"`) }, 15*time.Second, 100*time.Millisecond,
			"the access log names the backend that answered")
		requireCost(t, c.g, "xp-bedrock", before["xp-bedrock"], float64(out.Stream.PromptTokens+out.Stream.CompletionTokens+out.Whole.PromptTokens+out.Whole.CompletionTokens))
	})

	t.Run("anthropic to openai", func(t *testing.T) {
		out := all["xp-reverse"]
		assert.Equal(t, "tool_use", out.Stream.StopReason)
		require.Len(t, out.Stream.ToolUses, 1)
		assert.Equal(t, fakellm.FakeToolCallID, out.Stream.ToolUses[0].ID, "the OpenAI tool call, translated")
		assert.Equal(t, "get_weather", out.Stream.ToolUses[0].Name)
		assert.Positive(t, out.Stream.OutputTokens)
		assert.Equal(t, "end_turn", out.Whole.StopReason)
		assert.NotEmpty(t, out.Whole.Text)
		requireCost(t, c.g, "xp-reverse", before["xp-reverse"], float64(out.Stream.InputTokens+out.Stream.OutputTokens+out.Whole.InputTokens+out.Whole.OutputTokens))
	})

	t.Run("openai to gemini and vertex", func(t *testing.T) {
		u := fakegemini.Usage
		for _, m := range []string{"xp-gemini", "xp-vertex"} {
			out := all[m]
			requireToolCall(t, out, `{"city":"Paris"}`)
			assert.Equal(t, "The weather is sunny.", out.Whole.Content, m)
			assert.Equal(t, u.Prompt, out.Stream.PromptTokens, m+": Gemini's usageMetadata")
			assert.Equal(t, u.Candidates+u.Thoughts, out.Stream.CompletionTokens, m)
			requireCost(t, c.g, m, before[m], float64(2*(u.Prompt+u.Candidates+u.Thoughts)))
		}
		assert.Equal(t, []string{
			"/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
			"/v1beta/models/gemini-2.5-flash:generateContent",
			"/v1/projects/sg-project/locations/us-central1/publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
			"/v1/projects/sg-project/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent",
		}, c.gemini.Paths()[:4], "each fallback's path and model name; the fake refuses a wrong key or bearer")
	})

	t.Run("anthropic to claude on vertex", func(t *testing.T) {
		out := all["xp-cvertex"]
		u := fakegemini.ClaudeUsage
		assert.Equal(t, "tool_use", out.Stream.StopReason)
		require.Len(t, out.Stream.ToolUses, 1)
		assert.Equal(t, fakegemini.ClaudeToolUseID, out.Stream.ToolUses[0].ID)
		assert.Equal(t, map[string]any{"city": "Paris"}, out.Stream.ToolUses[0].Input)
		assert.Equal(t, u.Input, out.Stream.InputTokens)
		assert.Equal(t, u.Output, out.Stream.OutputTokens)
		assert.Equal(t, "The weather is sunny.", out.Whole.Text)
		requireCost(t, c.g, "xp-cvertex", before["xp-cvertex"], float64(2*(u.Input+u.Output)))
		const base = "/v1/projects/sg-project/locations/us-central1/publishers/anthropic/models/claude-sonnet-4-5@20250929"
		assert.Equal(t, []string{base + ":streamRawPredict", base + ":rawPredict", base + ":streamRawPredict", base + ":rawPredict"}, c.gemini.Paths()[4:],
			"anthropic_version in the body, no model (the fake checks); xp-cvertex's then xp-ant-cvertex's")
		assert.Equal(t, 2, c.gemini.TokensIssued(), "one token per Vertex backend, fetched by the gateway and cached for its attempts")
		assert.Equal(t, primaryBefore+8, c.primary.Stats().Requests, "the primary was tried first (and answered 500) for xp-claude, xp-gemini, xp-vertex and xp-cvertex")
	})

	t.Run("anthropic api to claude on vertex", func(t *testing.T) {
		out := all["xp-ant-cvertex"]
		u := fakegemini.ClaudeUsage
		assert.Equal(t, "tool_use", out.Stream.StopReason)
		require.Len(t, out.Stream.ToolUses, 1)
		assert.Equal(t, fakegemini.ClaudeToolUseID, out.Stream.ToolUses[0].ID, "Claude on Vertex answered, the Anthropic API (500) did not")
		assert.Equal(t, "The weather is sunny.", out.Whole.Text)
		requireCost(t, c.g, "xp-ant-cvertex", before["xp-ant-cvertex"], float64(2*(u.Input+u.Output)))
	})
}

func requireToolCall(t *testing.T, out crossOut, input string) {
	t.Helper()
	assert.Equal(t, "tool_calls", out.Stream.FinishReason)
	require.Len(t, out.Stream.ToolCalls, 1)
	assert.Equal(t, "get_weather", out.Stream.ToolCalls[0].Name)
	assert.JSONEq(t, input, out.Stream.ToolCalls[0].Arguments)
	assert.Positive(t, out.Stream.PromptTokens, "usage from the fallback")
	assert.Positive(t, out.Stream.CompletionTokens)
	assert.Equal(t, "stop", out.Whole.FinishReason)
	assert.Positive(t, out.Whole.CompletionTokens)
}

// requireCost waits for the model's recorded cost (a dollar a token) to
// have grown from before by the tokens the client was told.
func requireCost(t *testing.T, g *env, model string, before, want float64) {
	t.Helper()
	require.Eventually(t, func() bool {
		return costOf(t, g, model)-before == want
	}, 5*time.Second, 50*time.Millisecond, "cost of %s: want %v more than %v", model, want, before)
}

func costOf(t *testing.T, g *env, model string) float64 {
	return sumWhere(scrapeFamilies(t, g), "streamgate_cost_usd_total", "", map[string]string{"model": model})
}

// TestClientAmzHeadersNeverReachBedrock: a client's x-amz-* headers and
// its authorization are removed before the gateway signs, on a plain
// Bedrock route and on a cross-protocol attempt (the fake refuses any
// x-amz-* header the signature does not cover, an unknown security token,
// and a second Authorization header).
func TestClientAmzHeadersNeverReachBedrock(t *testing.T) {
	c := startCross(t)
	for _, model := range []string{"claude-bedrock", "xp-bedrock"} {
		t.Run(model, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, c.g.gateway+"/v1/chat/completions",
				strings.NewReader(`{"model":"`+model+`","max_tokens":20,"messages":[{"role":"user","content":"hello"}]}`))
			require.NoError(t, err)
			req.Header.Set("content-type", "application/json")
			req.Header.Set("x-amz-security-token", "a-stolen-session")
			req.Header.Set("x-amz-target", "client-chosen")
			req.Header.Add("authorization", "Bearer one")
			req.Header.Add("authorization", "Bearer two")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
		})
	}
	assert.Zero(t, c.bedrock.Refused())
}

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/streamgate/streamgate/examples/fakegemini"
)

// claudeVertexConfig: Claude on Vertex AI (an anthropic backend with a
// vertex block) for two models, one per SDK so each one's cost is its
// own. %[1]s is the fake's address, %[2]s the service account key file.
const claudeVertexConfig = listeners + `backends:
  - name: claude-vertex
    protocol: anthropic
    endpoints: [%[1]s]
    vertex: {project: sg-project, location: us-central1, credentials_file: %[2]s}
models:
  - {name: vsonnet, backend: claude-vertex, upstream_model: "claude-sonnet-4-5@20250929"}
  - {name: vsonnet-chat, backend: claude-vertex, upstream_model: "claude-sonnet-4-5@20250929"}
telemetry:
  usage: true
  prices:
    vsonnet: {input_per_million: 1000000, output_per_million: 1000000}
    vsonnet-chat: {input_per_million: 1000000, output_per_million: 1000000}
`

// TestClaudeOnVertexWithOfficialSDKs: the anthropic SDK (Messages, as is
// but for the Vertex envelope) and the openai SDK (Chat Completions,
// translated to Messages) stream a tool use and get a whole answer from
// Claude on Vertex AI through Streamgate: the fake checks the rawPredict /
// streamRawPredict path, the bearer it issued to the service account,
// anthropic_version vertex-2023-10-16 in the body and no model there.
// Usage is Claude's and is what the gateway meters; Vertex's quota 429
// reaches both clients as their rate-limit error.
func TestClaudeOnVertexWithOfficialSDKs(t *testing.T) {
	py := pythonSDKs(t)
	fake, addr, keyFile, _ := startFakeGemini(t)
	g := startGateway(t, fmt.Sprintf(claudeVertexConfig, addr, keyFile))

	all := map[string]crossOut{}
	runPyArgs(t, py, "cross_client.py", []string{g.gateway, "anthropic:vsonnet", "openai:vsonnet-chat"}, &all)
	u := fakegemini.ClaudeUsage

	t.Run("anthropic sdk", func(t *testing.T) {
		out := all["vsonnet"]
		assert.Equal(t, "tool_use", out.Stream.StopReason)
		require.Len(t, out.Stream.ToolUses, 1)
		assert.Equal(t, fakegemini.ClaudeToolUseID, out.Stream.ToolUses[0].ID)
		assert.Equal(t, "get_weather", out.Stream.ToolUses[0].Name)
		assert.Equal(t, map[string]any{"city": "Paris"}, out.Stream.ToolUses[0].Input)
		assert.Equal(t, u.Input, out.Stream.InputTokens)
		assert.Equal(t, u.Output, out.Stream.OutputTokens)
		assert.Equal(t, "end_turn", out.Whole.StopReason)
		assert.Equal(t, "The weather is sunny.", out.Whole.Text)
		assert.Equal(t, u.Input, out.Whole.InputTokens)
		requireCost(t, g, "vsonnet", 0, float64(2*(u.Input+u.Output)))
	})

	t.Run("openai sdk", func(t *testing.T) {
		out := all["vsonnet-chat"]
		requireToolCall(t, out, `{"city":"Paris"}`)
		assert.Equal(t, fakegemini.ClaudeToolUseID, out.Stream.ToolCalls[0].ID)
		assert.Equal(t, "The weather is sunny.", out.Whole.Content)
		assert.Equal(t, u.Input, out.Stream.PromptTokens)
		assert.Equal(t, u.Output, out.Stream.CompletionTokens)
		requireCost(t, g, "vsonnet-chat", 0, float64(2*(u.Input+u.Output)))
	})

	t.Run("quota", func(t *testing.T) {
		for path, want := range map[string]string{
			"/v1/messages":         `{"model":"vsonnet","max_tokens":5,"messages":[{"role":"user","content":"fake:rate-limit"}]}`,
			"/v1/chat/completions": `{"model":"vsonnet-chat","messages":[{"role":"user","content":"fake:rate-limit"}]}`,
		} {
			resp, err := http.Post(g.gateway+path, "application/json", strings.NewReader(want))
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "%s: %s", path, body)
			typ := gjson.GetBytes(body, "error.type").Str
			assert.Equal(t, "rate_limit_error", typ, "%s: %s", path, body)
			assert.Contains(t, gjson.GetBytes(body, "error.message").Str, "Quota exceeded", path)
		}
	})

	const base = "/v1/projects/sg-project/locations/us-central1/publishers/anthropic/models/claude-sonnet-4-5@20250929"
	assert.Equal(t, []string{
		base + ":streamRawPredict", base + ":rawPredict", base + ":streamRawPredict", base + ":rawPredict",
	}, fake.Paths()[:4], "the SDKs' streams and whole answers, each on its method")
	assert.Len(t, fake.Paths(), 6, "and the two quota errors")
	assert.Equal(t, 1, fake.TokensIssued(), "one token, fetched by the gateway and cached, for every request")
}

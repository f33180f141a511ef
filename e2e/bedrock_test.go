package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakebedrock"
)

// bedrockModelID is a real Bedrock model id: its ':' must be escaped in
// the path and signed escaped.
const bedrockModelID = "anthropic.claude-3-haiku-20240307-v1:0"

// bedrockConfig serves claude-bedrock from a fake Bedrock signed with the
// good profile, claude-bad from the same fake signed with a wrong secret.
// %s: the fake's address, the shared config and credentials files.
const bedrockConfig = listeners + `backends:
  - name: bedrock
    protocol: bedrock
    endpoints: [%[1]s]
    aws: {region: us-east-1, profile: streamgate-test, config_files: [%[2]s], credentials_files: [%[3]s]}
  - name: bedrock-bad
    protocol: bedrock
    endpoints: [%[1]s]
    aws: {region: us-east-1, profile: wrong-secret, config_files: [%[2]s], credentials_files: [%[3]s]}
models:
  - name: claude-bedrock
    backend: bedrock
    upstream_model: ` + bedrockModelID + `
  - name: claude-bad
    backend: bedrock-bad
    upstream_model: ` + bedrockModelID + `
  - name: claude-metered
    backend: bedrock
    upstream_model: ` + bedrockModelID + `
telemetry:
  usage: true
  prices: {claude-metered: {input_per_million: 1000000, output_per_million: 1000000}}
`

// startFakeBedrock runs a fake Bedrock and writes the shared AWS files a
// gateway reads its credentials from: profile streamgate-test holds the
// fake's key, wrong-secret the same key id with another secret.
func startFakeBedrock(t *testing.T) (fake *fakebedrock.Server, addr, configFile, credsFile string) {
	t.Helper()
	fake = fakebedrock.New(fakebedrock.Options{
		Region: "us-east-1", Keys: map[string]string{"AKIDSTREAMGATETEST": "c2VjcmV0LXRlc3Qta2V5"},
		Models: []string{bedrockModelID},
	})
	ts := httptest.NewServer(fake)
	t.Cleanup(ts.Close)
	dir := t.TempDir()
	configFile, credsFile = filepath.Join(dir, "config"), filepath.Join(dir, "credentials")
	require.NoError(t, os.WriteFile(configFile, []byte("[profile streamgate-test]\nregion = us-east-1\n[profile wrong-secret]\nregion = us-east-1\n"), 0o600))
	require.NoError(t, os.WriteFile(credsFile, []byte("[streamgate-test]\naws_access_key_id = AKIDSTREAMGATETEST\naws_secret_access_key = c2VjcmV0LXRlc3Qta2V5\n"+
		"[wrong-secret]\naws_access_key_id = AKIDSTREAMGATETEST\naws_secret_access_key = not-the-secret\n"), 0o600))
	return fake, hostPort(ts.URL), configFile, credsFile
}

// TestBedrockWithOfficialSDKs streams through Streamgate to a fake Bedrock
// that checks every SigV4 signature with the AWS SDK's signer: the openai
// SDK (chat with a tool call, tool result, throttling, a mid-stream
// exception, validation errors, wrong credentials) and the anthropic SDK
// (a streamed message with a tool call, a whole one, throttling, wrong
// credentials).
func TestBedrockWithOfficialSDKs(t *testing.T) {
	checkBedrockSDKs(t, "converse")
}

// TestBedrockInvokeWithOfficialSDKs is TestBedrockWithOfficialSDKs for
// Claude on InvokeModel (aws.api: invoke): the same answers, through
// InvokeModel and InvokeModelWithResponseStream.
func TestBedrockInvokeWithOfficialSDKs(t *testing.T) {
	checkBedrockSDKs(t, "invoke")
}

// checkBedrockSDKs runs the SDKs against bedrock backends using api.
func checkBedrockSDKs(t *testing.T, api string) {
	py := pythonSDKs(t)
	fake, addr, configFile, credsFile := startFakeBedrock(t)
	cfg := strings.ReplaceAll(fmt.Sprintf(bedrockConfig, addr, configFile, credsFile), "aws: {region: us-east-1,", "aws: {region: us-east-1, api: "+api+",")
	g := startGateway(t, cfg)
	var out struct {
		ChatStream struct {
			Content          *string
			FinishReason     string                                 `json:"finish_reason"`
			ToolCalls        []struct{ ID, Name, Arguments string } `json:"tool_calls"`
			ArgumentDeltas   int                                    `json:"argument_deltas"`
			PromptTokens     int                                    `json:"prompt_tokens"`
			CompletionTokens int                                    `json:"completion_tokens"`
		} `json:"chat_stream"`
		Chat struct {
			Content      string
			FinishReason string `json:"finish_reason"`
			ToolCalls    int    `json:"tool_calls"`
			PromptTokens int    `json:"prompt_tokens"`
		}
		ChatThrottled      *sdkError `json:"chat_throttled"`
		ChatInvalid        *sdkError `json:"chat_invalid"`
		ChatMidstream      *sdkError `json:"chat_midstream"`
		ChatBadCredentials *sdkError `json:"chat_bad_credentials"`
		MessagesStream     struct {
			Events   []string
			Text     string
			ToolUses []struct {
				ID, Name string
				Input    map[string]any
			} `json:"tool_uses"`
			StopReason   string `json:"stop_reason"`
			InputTokens  int    `json:"input_tokens"`
			OutputTokens int    `json:"output_tokens"`
		} `json:"messages_stream"`
		Messages struct {
			Text         string
			StopReason   string `json:"stop_reason"`
			OutputTokens int    `json:"output_tokens"`
		}
		MessagesThrottled      *sdkError `json:"messages_throttled"`
		MessagesBadCredentials *sdkError `json:"messages_bad_credentials"`
	}
	runPyArgs(t, py, "bedrock_client.py", []string{g.gateway, "claude-bedrock", "claude-bad"}, &out)

	cs := out.ChatStream
	assert.Equal(t, "tool_calls", cs.FinishReason)
	require.Len(t, cs.ToolCalls, 1)
	assert.Equal(t, fakebedrock.ToolUseID, cs.ToolCalls[0].ID)
	assert.Equal(t, "get_weather", cs.ToolCalls[0].Name)
	assert.JSONEq(t, fakebedrock.ToolInput, cs.ToolCalls[0].Arguments)
	assert.GreaterOrEqual(t, cs.ArgumentDeltas, 2, "tool input arrives in the pieces Bedrock streamed")
	require.NotNil(t, cs.Content)
	assert.Equal(t, "Echo: Weather in Paris?", *cs.Content)
	assert.Positive(t, cs.PromptTokens, "usage from Bedrock's metadata event")
	assert.Positive(t, cs.CompletionTokens)

	assert.Equal(t, "Echo: Weather in Paris?", out.Chat.Content, "the tool result turn is answered in text")
	assert.Equal(t, "stop", out.Chat.FinishReason)
	assert.Zero(t, out.Chat.ToolCalls)

	requireSDKError(t, out.ChatThrottled, "RateLimitError", http.StatusTooManyRequests, "Too many requests")
	requireSDKError(t, out.ChatInvalid, "BadRequestError", http.StatusBadRequest, "fake:invalid")
	require.NotNil(t, out.ChatMidstream, "a throttlingException frame must surface as an SDK error")
	assert.Contains(t, out.ChatMidstream.Message, "Too many tokens")
	requireSDKError(t, out.ChatBadCredentials, "InternalServerError", http.StatusBadGateway, "refused the gateway's AWS credentials")
	assert.Contains(t, out.ChatBadCredentials.Message, "signature we calculated does not match")

	ms := out.MessagesStream
	assert.Equal(t, "tool_use", ms.StopReason)
	assert.Equal(t, "Echo: Weather in Paris?", ms.Text)
	require.Len(t, ms.ToolUses, 1)
	assert.Equal(t, map[string]any{"city": "Paris"}, ms.ToolUses[0].Input)
	assert.Positive(t, ms.InputTokens)
	assert.Positive(t, ms.OutputTokens)
	require.NotEmpty(t, ms.Events)
	assert.Equal(t, "message_start", ms.Events[0])
	assert.Equal(t, "message_stop", ms.Events[len(ms.Events)-1])
	assert.Equal(t, "Echo: Say hi", out.Messages.Text)
	assert.Equal(t, "end_turn", out.Messages.StopReason)
	requireSDKError(t, out.MessagesThrottled, "RateLimitError", http.StatusTooManyRequests, "Too many requests")
	requireSDKError(t, out.MessagesBadCredentials, "InternalServerError", http.StatusBadGateway, "AWS credentials")

	assert.Equal(t, 2, fake.Refused(), "only the two wrong-credential requests fail their signature")
	reqs := fake.Requests()
	require.NotEmpty(t, reqs)
	for _, r := range reqs {
		assert.Equal(t, bedrockModelID, r.Model)
		assert.True(t, strings.HasPrefix(r.Path, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/"+api), r.Path)
	}
}

// runPyArgs runs an e2e/py script with args and decodes its JSON.
func runPyArgs(t *testing.T, py, script string, args []string, out any) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), py, append([]string{filepath.Join("py", script)}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	require.NoError(t, err, "%s failed:\n%s", script, stderr.String())
	require.NoError(t, json.Unmarshal(stdout, out), "%s printed %s", script, stdout)
}

// TestBedrockUsageIsMetered: the usage of Bedrock's metadata event,
// translated for an Anthropic Messages client, is what the gateway records
// (here: the cost at one dollar per token).
func TestBedrockUsageIsMetered(t *testing.T) {
	// The fake counts 4 prompt bytes a token: of the Converse content
	// block, or of Claude's content string on InvokeModel.
	t.Run("converse", func(t *testing.T) { checkBedrockUsage(t, "converse", len(`{"text":"count these words please"}`)/4) })
	t.Run("invoke", func(t *testing.T) { checkBedrockUsage(t, "invoke", len(`"count these words please"`)/4) })
}

func checkBedrockUsage(t *testing.T, api string, input int) {
	_, addr, configFile, credsFile := startFakeBedrock(t)
	cfg := strings.ReplaceAll(fmt.Sprintf(bedrockConfig, addr, configFile, credsFile), "aws: {region: us-east-1,", "aws: {region: us-east-1, api: "+api+",")
	g := startGateway(t, cfg)
	for _, stream := range []bool{true, false} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, g.gateway+"/v1/messages",
			strings.NewReader(fmt.Sprintf(`{"model":"claude-metered","max_tokens":50,"stream":%t,"messages":[{"role":"user","content":"count these words please"}]}`, stream)))
		require.NoError(t, err)
		req.Header.Set("content-type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	}
	// A token per output word: "Echo: count these words please" is 5 words.
	want := 2 * float64(input+5)
	require.Eventually(t, func() bool {
		return sumWhere(scrapeFamilies(t, g), "streamgate_cost_usd_total", "", map[string]string{"model": "claude-metered"}) == want
	}, 5*time.Second, 50*time.Millisecond, "cost of two requests at $1 a token: %v", want)
}

func requireSDKError(t *testing.T, e *sdkError, class string, status int, msg string) {
	t.Helper()
	require.NotNil(t, e, "want a %s", class)
	assert.Equal(t, class, e.Class, e.Message)
	if assert.NotNil(t, e.Status) {
		assert.Equal(t, status, *e.Status)
	}
	assert.Contains(t, e.Message, msg)
}

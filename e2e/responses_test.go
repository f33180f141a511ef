package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakellm"
	"github.com/streamgate/streamgate/extproc/auth"
)

const responsesKey = "sk-e2e-responses-7c3a9e1f5b"

// responsesConfig: gpt-model on a chat-only OpenAI backend, behind an API
// key and a token limit.
const responsesConfig = listeners + `backends:
  - name: oai
    protocol: openai
    endpoints: [{{.BackendA}}]
models:
  - name: gpt-model
    backend: oai
    upstream_model: gpt-upstream
auth:
  tenants:
    - name: acme
      models: ["*"]
      endpoints: [/v1/responses]
      max_tokens: 100000
      api_keys:
        - {hash: %s}
limits:
  tenants:
    - name: "*"
      total_tokens_per_minute: 10000000
`

type responsesUsage struct {
	Input  int `json:"input_tokens"`
	Output int `json:"output_tokens"`
	Total  int `json:"total_tokens"`
}

type responsesError struct {
	Class, Message, Code string
	Status               *int
}

// runResponsesPy runs e2e/py/responses_client.py in mode and decodes its JSON.
func runResponsesPy(t *testing.T, py string, e *env, mode string, out any) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), py, filepath.Join("py", "responses_client.py"), e.gateway, "gpt-model", responsesKey, mode)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	require.NoError(t, err, "responses_client.py failed:\n%s", stderr.String())
	require.NoError(t, json.Unmarshal(stdout, out), "responses_client.py printed %s", stdout)
}

// TestOpenAISDKResponsesAPIWithChatBackend: the official SDK's
// responses.create (plain and stream=True) and responses.stream work
// against a backend that serves only Chat Completions, under auth and
// limits, and the limiter reconciles exactly the usage the SDK saw.
func TestOpenAISDKResponsesAPIWithChatBackend(t *testing.T) {
	py := pythonSDKs(t)
	// The same calls against an OpenAI chat backend and, through Chat
	// Completions, an Anthropic and an Ollama one.
	for _, protocol := range []string{"openai", "anthropic", "ollama"} {
		t.Run(protocol, func(t *testing.T) { responsesWithChatBackend(t, py, protocol) })
	}
}

func responsesWithChatBackend(t *testing.T, py, protocol string) {
	e := startGateway(t, strings.Replace(fmt.Sprintf(responsesConfig, auth.HashKey(responsesKey)), "protocol: openai", "protocol: "+protocol, 1))
	inBefore := metric(t, e, `streamgate_tokens_reconciled_total{direction="input"}`)
	outBefore := metric(t, e, `streamgate_tokens_reconciled_total{direction="output"}`)
	var out struct {
		Create struct {
			Object, Status, Text, Reason string
			Usage                        responsesUsage
		}
		CreateStream struct {
			Types        []string
			Deltas, Text string
			Usage        responsesUsage
		} `json:"create_stream"`
		StreamTools struct {
			Calls []struct {
				CallID          string `json:"call_id"`
				Name, Arguments string
			} `json:"calls"`
			ArgDeltas int `json:"arg_deltas"`
			Usage     responsesUsage
		} `json:"stream_tools"`
		ToolResult struct {
			Types []string
			Text  string
			Usage responsesUsage
		} `json:"tool_result"`
	}
	runResponsesPy(t, py, e, "ok", &out)

	c := out.Create
	assert.Equal(t, "response", c.Object)
	assert.Equal(t, "incomplete", c.Status, "max_output_tokens 5 cut the answer")
	assert.Equal(t, "max_output_tokens", c.Reason)
	assert.Equal(t, strings.Join(wantTokens(5), ""), c.Text)
	assert.Equal(t, 5, c.Usage.Output)
	assert.Positive(t, c.Usage.Input)
	assert.Equal(t, c.Usage.Input+c.Usage.Output, c.Usage.Total)

	s := out.CreateStream
	require.NotEmpty(t, s.Types)
	assert.Equal(t, []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"}, s.Types[:4])
	assert.Equal(t, []string{"response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"}, s.Types[len(s.Types)-4:])
	assert.Equal(t, strings.Join(wantTokens(16), ""), s.Deltas)
	assert.Equal(t, s.Deltas, s.Text, "response.completed repeats the streamed text")
	assert.Equal(t, 16, s.Usage.Output)

	st := out.StreamTools
	require.Len(t, st.Calls, 1)
	if protocol == "openai" {
		assert.Equal(t, fakellm.FakeToolCallID, st.Calls[0].CallID)
	} else { // the backend's own id (Anthropic's toolu_…), or one the translation makes (Ollama sends none)
		assert.NotEmpty(t, st.Calls[0].CallID)
	}
	assert.Equal(t, "get_weather", st.Calls[0].Name)
	assert.JSONEq(t, fakellm.FakeToolInput, st.Calls[0].Arguments, "the SDK joined the streamed argument pieces")
	if protocol == "ollama" {
		assert.Equal(t, 1, st.ArgDeltas, "Ollama sends a tool call whole")
	} else {
		assert.GreaterOrEqual(t, st.ArgDeltas, 3)
	}

	assert.Equal(t, []string{"message"}, out.ToolResult.Types, "after the function_call_output the backend answers in text")
	assert.NotEmpty(t, out.ToolResult.Text)

	waitMetric(t, e, "streamgate_reservations_outstanding", 0)
	var wantIn, wantOut int
	for _, u := range []responsesUsage{c.Usage, s.Usage, st.Usage, out.ToolResult.Usage} {
		wantIn, wantOut = wantIn+u.Input, wantOut+u.Output
	}
	assert.Equal(t, float64(wantOut), metric(t, e, `streamgate_tokens_reconciled_total{direction="output"}`)-outBefore,
		"the limiter charged the output tokens the backend reported")
	assert.Equal(t, float64(wantIn), metric(t, e, `streamgate_tokens_reconciled_total{direction="input"}`)-inBefore)
	assert.Equal(t, "gpt-upstream", gw.backendA.Stats().LastModel)
}

// TestOpenAISDKResponsesAPIErrors: stateful requests get a 400 naming the
// field, auth and routing refusals keep their statuses, and a backend
// failing mid-stream never looks like a completed response.
func TestOpenAISDKResponsesAPIErrors(t *testing.T) {
	py := pythonSDKs(t)
	e := startGateway(t, fmt.Sprintf(responsesConfig, auth.HashKey(responsesKey)))
	var out struct {
		PreviousResponseID *responsesError `json:"previous_response_id"`
		Store              *responsesError
		OverCap            *responsesError `json:"over_cap"`
		UnknownModel       *responsesError `json:"unknown_model"`
		BadKey             *responsesError `json:"bad_key"`
		Midstream          struct {
			Types            []string
			Error, Exception *string
		}
	}
	runResponsesPy(t, py, e, "errors", &out)
	for name, tc := range map[string]struct {
		got     *responsesError
		status  int
		code    string
		message string
	}{
		"previous_response_id":  {out.PreviousResponseID, 400, "stateful_request_not_supported", `"previous_response_id"`},
		"store":                 {out.Store, 400, "stateful_request_not_supported", `"store"`},
		"unknown model":         {out.UnknownModel, 404, "model_not_found", "nope"},
		"over the tenant's cap": {out.OverCap, 400, "invalid_request", "max_output_tokens is 200000; your limit is 100000"},
		"bad key":               {out.BadKey, 401, "invalid_api_key", ""},
	} {
		require.NotNil(t, tc.got, name)
		require.NotNil(t, tc.got.Status, name)
		assert.Equal(t, tc.status, *tc.got.Status, name)
		assert.Equal(t, tc.code, tc.got.Code, name)
		assert.Contains(t, tc.got.Message, tc.message, name)
	}
	m := out.Midstream
	assert.NotContains(t, m.Types, "response.completed")
	assert.True(t, m.Error != nil || m.Exception != nil, "a broken stream surfaces as response.failed or an SDK error: %+v", m)
	waitMetric(t, e, "streamgate_reservations_outstanding", 0)
}

package extproc

import (
	"encoding/json"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/extproc/telemetry"
)

func TestResponsesStreamTranslatedToChatBackend(t *testing.T) {
	p := newTranslationProcessor(t, translationConfig)
	require.NotNil(t, p.handle(requestHeaders("/v1/responses")).GetModeOverride(), "/v1/responses may be translated: the response is read")
	resp := p.handle(requestBody(`{"model":"gpt","stream":true,"instructions":"be brief","input":"x","max_output_tokens":9}`))
	common := resp.GetRequestBody().GetResponse()
	require.NotNil(t, common, "%v", resp)
	assert.Equal(t, "/v1/chat/completions", setHeaders(common.GetHeaderMutation())[":path"])
	var sent struct {
		MaxTokens     int `json:"max_tokens"`
		StreamOptions struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
		Messages []struct{ Role string } `json:"messages"`
	}
	require.NoError(t, json.Unmarshal(common.GetBodyMutation().GetBody(), &sent))
	assert.Equal(t, 9, sent.MaxTokens)
	assert.True(t, sent.StreamOptions.IncludeUsage)
	require.Len(t, sent.Messages, 2)
	assert.Equal(t, "system", sent.Messages[0].Role)

	rh := p.handle(responseHeaders("200"))
	assert.Equal(t, extprocv3.ProcessingMode_STREAMED, rh.GetModeOverride().GetResponseBodyMode())
	chunk := p.handle(responseBody(`data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}`+"\n\n", false))
	got := string(chunk.GetResponseBody().GetResponse().GetBodyMutation().GetBody())
	assert.Contains(t, got, "event: response.created\n")
	assert.Contains(t, got, `"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_c1","output_index":0,"content_index":0,"delta":"hi"`)
	chunk = p.handle(responseBody(`data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`+"\n\n"+
		`data: {"id":"c1","model":"m","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":1,"total_tokens":8}}`+"\n\ndata: [DONE]\n\n", true))
	got = string(chunk.GetResponseBody().GetResponse().GetBodyMutation().GetBody())
	assert.Contains(t, got, `"usage":{"input_tokens":7,"input_tokens_details":{"cached_tokens":0},"output_tokens":1`)
}

func TestResponsesRefusals(t *testing.T) {
	for name, tc := range map[string]struct {
		body   string
		status int
		want   []string
	}{
		"previous_response_id needs stored state": {`{"model":"gpt","input":"x","previous_response_id":"resp_1"}`, 400,
			[]string{`"code":"stateful_request_not_supported"`, `\"previous_response_id\"`}},
		"store true needs stored state": {`{"model":"gpt","input":"x","store":true}`, 400, []string{`"code":"stateful_request_not_supported"`, `\"store\"`}},
		"background needs stored state": {`{"model":"gpt","input":"x","background":true}`, 400, []string{`"code":"stateful_request_not_supported"`, `\"background\"`}},
		"built-in tool":                 {`{"model":"gpt","input":"x","tools":[{"type":"web_search_preview"}]}`, 400, []string{`"code":"unsupported_by_backend"`, "web_search_preview"}},
		"missing model":                 {`{"input":"x"}`, 400, []string{`"message":"You must provide a model parameter."`}},
		"unknown model":                 {`{"model":"nope","input":"x"}`, 404, []string{`"code":"model_not_found"`}},
	} {
		t.Run(name, func(t *testing.T) {
			p := newTranslationProcessor(t, translationConfig)
			p.handle(requestHeaders("/v1/responses"))
			ir := p.handle(requestBody(tc.body)).GetImmediateResponse()
			require.NotNil(t, ir)
			assert.Equal(t, tc.status, int(ir.GetStatus().GetCode()))
			for _, w := range tc.want {
				assert.Contains(t, string(ir.GetBody()), w)
			}
		})
	}
}

const nativeResponsesConfig = `backends:
  - name: vllm
    protocol: openai
    responses_api: true
    endpoints: [127.0.0.1:8000]
  - name: oai
    protocol: openai
    endpoints: [127.0.0.1:8001]
models:
  - name: native
    backend: vllm
    upstream_model: served
  - name: native-with-chat-fallback
    backend: vllm
    fallbacks: [oai]
`

func TestResponsesPassThroughToNativeBackend(t *testing.T) {
	p := newTranslationProcessor(t, nativeResponsesConfig)
	p.handle(requestHeaders("/v1/responses"))
	resp := p.handle(requestBody(`{"model":"native","input":"x","previous_response_id":"resp_1","store":true}`))
	common := resp.GetRequestBody().GetResponse()
	require.NotNil(t, common, "stateful fields pass to a backend that keeps state: %v", resp)
	h := setHeaders(common.GetHeaderMutation())
	assert.Empty(t, h[":path"], "the path stays /v1/responses")
	assert.JSONEq(t, `{"model":"served","input":"x","previous_response_id":"resp_1","store":true}`, string(common.GetBodyMutation().GetBody()),
		"only the model is rewritten")
	assert.Nil(t, p.tx, "no translation")
	assert.True(t, p.meter.responses, "the meter reads Responses usage")
}

func TestResponsesTranslatedWhenAFallbackLacksTheNativeAPI(t *testing.T) {
	p := newTranslationProcessor(t, nativeResponsesConfig)
	p.handle(requestHeaders("/v1/responses"))
	ir := p.handle(requestBody(`{"model":"native-with-chat-fallback","input":"x","previous_response_id":"resp_1"}`)).GetImmediateResponse()
	require.NotNil(t, ir, "a chain one of whose backends lacks responses_api is translated, so stateful requests are refused")
	assert.Contains(t, string(ir.GetBody()), "stateful_request_not_supported")
}

func TestResponsesCountedAsTheChatOperation(t *testing.T) {
	p := newTranslationProcessor(t, translationConfig)
	p.handle(requestHeaders("/v1/responses"))
	p.handle(requestBody(`{"model":"gpt","input":"x"}`))
	r := p.record()
	assert.Equal(t, telemetry.OperationChat, r.Operation)
	assert.Equal(t, "/v1/responses", r.Endpoint)
}

// TestResponsesStreamToAnthropicBackend: a Responses request for a model on
// an Anthropic backend goes out as Anthropic Messages (through Chat
// Completions), and the backend's stream comes back as Responses events.
func TestResponsesStreamToAnthropicBackend(t *testing.T) {
	p := newTranslationProcessor(t, translationConfig)
	p.handle(requestHeaders("/v1/responses"))
	resp := p.handle(requestBody(`{"model":"sonnet","stream":true,"instructions":"be brief","input":"x","max_output_tokens":9}`))
	common := resp.GetRequestBody().GetResponse()
	require.NotNil(t, common, "%v", resp)
	h := setHeaders(common.GetHeaderMutation())
	assert.Equal(t, "/v1/messages", h[":path"])
	assert.Equal(t, "2023-06-01", h["anthropic-version"])
	var sent struct {
		Model     string `json:"model"`
		MaxTokens int    `json:"max_tokens"`
		System    string `json:"system"`
		Stream    bool   `json:"stream"`
		Messages  []struct {
			Role string `json:"role"`
		} `json:"messages"`
	}
	require.NoError(t, json.Unmarshal(common.GetBodyMutation().GetBody(), &sent))
	assert.Equal(t, "claude-x", sent.Model)
	assert.Equal(t, 9, sent.MaxTokens, "max_output_tokens becomes max_tokens")
	assert.Equal(t, "be brief", sent.System)
	assert.True(t, sent.Stream)
	require.Len(t, sent.Messages, 1)

	p.handle(responseHeaders("200"))
	chunk := p.handle(responseBody("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":3,\"output_tokens\":0}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n", false))
	got := string(chunk.GetResponseBody().GetResponse().GetBodyMutation().GetBody())
	assert.Contains(t, got, "event: response.created")
	assert.Contains(t, got, `"type":"response.output_text.delta"`)
	assert.Contains(t, got, `"delta":"hi"`)
	last := p.handle(responseBody("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":1}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", true))
	got = string(last.GetResponseBody().GetResponse().GetBodyMutation().GetBody())
	assert.Contains(t, got, "event: response.completed")
	assert.Contains(t, got, `"input_tokens":3`)
	assert.Contains(t, got, `"output_tokens":1`)
}

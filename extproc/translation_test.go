package extproc

import (
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

const translationConfig = `backends:
  - name: oai
    protocol: openai
    endpoints: [127.0.0.1:8000]
  - name: claude
    protocol: anthropic
    endpoints: [127.0.0.1:8001]
models:
  - name: gpt
    backend: oai
  - name: sonnet
    backend: claude
    upstream_model: claude-x
    default_max_tokens: 77
`

func newTranslationProcessor(t *testing.T, src string) *processor {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(src))
	require.NoError(t, err)
	return newProcessor(NewRoutes(cfg, 0), 1<<20, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
}

func requestHeaders(path string) *extprocsvcv3.ProcessingRequest {
	return &extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocsvcv3.HttpHeaders{
		Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: ":method", RawValue: []byte("POST")}, {Key: ":path", RawValue: []byte(path)},
		}},
	}}}
}

func requestBody(body string) *extprocsvcv3.ProcessingRequest {
	return &extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_RequestBody{RequestBody: &extprocsvcv3.HttpBody{Body: []byte(body), EndOfStream: true}}}
}

func responseHeaders(status string) *extprocsvcv3.ProcessingRequest {
	return &extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocsvcv3.HttpHeaders{
		Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: ":status", RawValue: []byte(status)}}},
	}}}
}

func responseBody(body string, end bool) *extprocsvcv3.ProcessingRequest {
	return &extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocsvcv3.HttpBody{Body: []byte(body), EndOfStream: end}}}
}

func TestResponsePhasesOnlyWhereTranslationIsPossible(t *testing.T) {
	onlyOpenAI := newTranslationProcessor(t, "backends:\n  - name: oai\n    protocol: openai\n    endpoints: [127.0.0.1:8000]\nmodels:\n  - name: gpt\n    backend: oai\n")
	assert.Nil(t, onlyOpenAI.handle(requestHeaders("/v1/chat/completions")).GetModeOverride(), "pass-through configs never ask for responses")

	p := newTranslationProcessor(t, translationConfig)
	mo := p.handle(requestHeaders("/v1/chat/completions")).GetModeOverride()
	require.NotNil(t, mo, "a chat request may reach the Anthropic backend")
	assert.Equal(t, extprocv3.ProcessingMode_SEND, mo.GetResponseHeaderMode())
	assert.Equal(t, extprocv3.ProcessingMode_NONE, mo.GetResponseBodyMode(), "no per-chunk cost before the backend is known")
	assert.Equal(t, extprocv3.ProcessingMode_BUFFERED, mo.GetRequestBodyMode())

	p = newTranslationProcessor(t, translationConfig)
	p.handle(requestHeaders("/v1/embeddings"))
	assert.Nil(t, p.handle(requestHeaders("/v1/embeddings")).GetModeOverride(), "embeddings never translate")
}

func TestPassThroughOnATranslatingPath(t *testing.T) {
	p := newTranslationProcessor(t, translationConfig)
	p.handle(requestHeaders("/v1/chat/completions"))
	body := p.handle(requestBody(`{"model":"gpt","stream":true,"messages":[{"role":"user","content":"x"}]}`))
	assert.Nil(t, body.GetRequestBody().GetResponse().GetBodyMutation(), "same API: body untouched")
	rh := p.handle(responseHeaders("200"))
	assert.Nil(t, rh.GetModeOverride(), "pass-through: the response body is not requested")
	assert.Nil(t, rh.GetResponseHeaders().GetResponse())
}

func TestChatStreamToAnthropicBackend(t *testing.T) {
	p := newTranslationProcessor(t, translationConfig)
	p.handle(requestHeaders("/v1/chat/completions"))
	resp := p.handle(requestBody(`{"model":"sonnet","stream":true,"messages":[{"role":"user","content":"x"}]}`))
	common := resp.GetRequestBody().GetResponse()
	require.NotNil(t, common, "%v", resp)
	h := setHeaders(common.GetHeaderMutation())
	assert.Equal(t, "/v1/messages", h[":path"])
	assert.Equal(t, "claude", h[contract.BackendHeader])
	assert.Equal(t, "default", h[contract.VersionHeader])
	assert.Equal(t, "2023-06-01", h["anthropic-version"])
	assert.Contains(t, common.GetHeaderMutation().GetRemoveHeaders(), "accept-encoding")
	out := common.GetBodyMutation().GetBody()
	assert.Equal(t, itoa(len(out)), h["content-length"])
	var sent struct {
		Model     string `json:"model"`
		MaxTokens int    `json:"max_tokens"`
	}
	require.NoError(t, json.Unmarshal(out, &sent))
	assert.Equal(t, "claude-x", sent.Model)
	assert.Equal(t, 77, sent.MaxTokens, "the model's configured default")

	rh := p.handle(responseHeaders("200"))
	require.NotNil(t, rh.GetModeOverride())
	assert.Equal(t, extprocv3.ProcessingMode_STREAMED, rh.GetModeOverride().GetResponseBodyMode())
	assert.Equal(t, "text/event-stream", setHeaders(rh.GetResponseHeaders().GetResponse().GetHeaderMutation())["content-type"])
	assert.Contains(t, rh.GetResponseHeaders().GetResponse().GetHeaderMutation().GetRemoveHeaders(), "content-length")

	chunk := p.handle(responseBody("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"claude-x\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_bl", false))
	got := string(chunk.GetResponseBody().GetResponse().GetBodyMutation().GetBody())
	assert.Contains(t, got, `"role":"assistant"`)
	assert.NotContains(t, got, "content_bl", "half an event waits for the rest")
	chunk = p.handle(responseBody("ock_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n", false))
	assert.Contains(t, string(chunk.GetResponseBody().GetResponse().GetBodyMutation().GetBody()), `"delta":{"content":"hi"}`)
}

func TestMessagesNonStreamToOpenAIBackend(t *testing.T) {
	p := newTranslationProcessor(t, translationConfig)
	p.handle(requestHeaders("/v1/messages"))
	resp := p.handle(requestBody(`{"model":"gpt","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`))
	assert.Equal(t, "/v1/chat/completions", setHeaders(resp.GetRequestBody().GetResponse().GetHeaderMutation())[":path"])
	rh := p.handle(responseHeaders("429"))
	assert.Equal(t, extprocv3.ProcessingMode_BUFFERED, rh.GetModeOverride().GetResponseBodyMode(), "error bodies are translated whole")
	body := p.handle(responseBody(`{"error":{"message":"slow down","type":"requests"}}`, true))
	assert.JSONEq(t, `{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`,
		string(body.GetResponseBody().GetResponse().GetBodyMutation().GetBody()))
}

func TestRefusalsUseTheClientsErrorShape(t *testing.T) {
	for name, tc := range map[string]struct{ path, body, want string }{
		"chat feature Anthropic cannot express": {"/v1/chat/completions", `{"model":"sonnet","n":3,"messages":[{"role":"user","content":"x"}]}`, `"code":"unsupported_by_backend"`},
		"completions on an Anthropic backend":   {"/v1/completions", `{"model":"sonnet","prompt":"x"}`, `cannot be used with the OpenAI Completions API`},
		"messages: unknown model":               {"/v1/messages", `{"model":"nope","max_tokens":5,"messages":[]}`, `{"type":"error","error":{"type":"not_found_error"`},
		"messages: missing max_tokens":          {"/v1/messages", `{"model":"gpt","messages":[{"role":"user","content":"x"}]}`, `"type":"invalid_request_error","message":"max_tokens`},
	} {
		t.Run(name, func(t *testing.T) {
			p := newTranslationProcessor(t, translationConfig)
			p.handle(requestHeaders(tc.path))
			ir := p.handle(requestBody(tc.body)).GetImmediateResponse()
			require.NotNil(t, ir)
			assert.Contains(t, string(ir.GetBody()), tc.want)
			assert.Less(t, int(ir.GetStatus().GetCode()), 500)
		})
	}
}

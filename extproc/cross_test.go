package extproc

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/extproc/extproctest"
)

// crossConfig: model x is served by an OpenAI-compatible backend falling
// back to an Anthropic one (its own model name and key) and to Gemini.
const crossConfig = `backends:
  - name: vllm
    protocol: openai
    endpoints: [127.0.0.1:8000]
    credential: {header: authorization, env: CROSS_VLLM_KEY}
  - name: claude
    protocol: anthropic
    endpoints: [127.0.0.1:8001]
    credential: {header: x-api-key, env: CROSS_CLAUDE_KEY}
  - name: gemini
    protocol: gemini
    endpoints: [127.0.0.1:8002]
    credential: {header: x-goog-api-key, env: CROSS_CLAUDE_KEY}
models:
  - name: x
    backend: vllm
    upstream_model: x-vllm
    fallbacks: [claude, gemini]
    fallback_models: {claude: claude-x}
`

func crossProcessor(t *testing.T) *processor {
	t.Helper()
	p := newTranslationProcessor(t, crossConfig)
	require.NotNil(t, p.handle(requestHeaders("/v1/chat/completions")).GetModeOverride(), "a cross model reads the response headers")
	return p
}

// TestCrossRequest: the main filter sends the client's body on unchanged in
// its API, with the headers the upstream filter reads and no backend's
// credential, and picks the translation at the response headers from the
// backend that answered.
func TestCrossRequest(t *testing.T) {
	p := crossProcessor(t)
	p.path = "/v1/chat/completions?key=secret"
	resp := p.handle(requestBody(`{"model":"x","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	common := resp.GetRequestBody().GetResponse()
	require.NotNil(t, common, "%v", resp)
	set := setHeaders(common.GetHeaderMutation())
	assert.Equal(t, contract.FailoverCluster([]string{"vllm", "claude", "gemini"}), set[contract.BackendHeader])
	assert.Equal(t, "/v1/chat/completions", set[contract.PathHeader], "no backend of the chain takes the query parameter: it goes nowhere")
	assert.Equal(t, "x", set[contract.ModelHeader])
	assert.NotContains(t, set, "authorization", "credentials are each attempt's")
	assert.NotContains(t, set, ":path")
	assert.Contains(t, common.GetHeaderMutation().GetRemoveHeaders(), "accept-encoding")
	assert.Nil(t, common.GetBodyMutation(), "the body goes on in the client's API")
	assert.False(t, p.done(resp), "the response is read")

	rh := responseHeaders("200")
	rh.GetResponseHeaders().Headers.Headers = append(rh.GetResponseHeaders().Headers.Headers,
		&corev3.HeaderValue{Key: "content-type", RawValue: []byte("text/event-stream")},
		&corev3.HeaderValue{Key: contract.AnsweredByHeader, RawValue: []byte("claude")})
	out := p.handle(rh)
	require.NotNil(t, p.tx, "Claude answered: translated")
	assert.Equal(t, config.ProtocolAnthropic, p.tx.proto)
	assert.Equal(t, meterClient, p.plan.side)
	hm := out.GetResponseHeaders().GetResponse().GetHeaderMutation()
	assert.Contains(t, hm.GetRemoveHeaders(), contract.AnsweredByHeader)
	assert.Equal(t, "text/event-stream", setHeaders(hm)["content-type"])
	assert.Equal(t, extprocv3.ProcessingMode_STREAMED, out.GetModeOverride().GetResponseBodyMode())
	md := out.GetDynamicMetadata().GetFields()[contract.MetadataNamespace].GetStructValue().GetFields()
	assert.Equal(t, "claude", md[contract.MetaBackend].GetStringValue(), "the access log names the backend that answered")
	assert.Equal(t, "claude-x", md[contract.MetaUpstreamModel].GetStringValue())

	p = crossProcessor(t)
	p.handle(requestBody(`{"model":"x","messages":[{"role":"user","content":"hi"}]}`))
	rh = responseHeaders("200")
	rh.GetResponseHeaders().Headers.Headers = append(rh.GetResponseHeaders().Headers.Headers, &corev3.HeaderValue{Key: contract.AnsweredByHeader, RawValue: []byte("vllm")})
	out = p.handle(rh)
	assert.Nil(t, p.tx, "the primary speaks the client's API")
	assert.Contains(t, out.GetResponseHeaders().GetResponse().GetHeaderMutation().GetRemoveHeaders(), contract.AnsweredByHeader)
}

// TestCrossRefusedBeforeSending: a request one backend of the chain cannot
// carry is refused by the main filter, from the refusal table, before any
// attempt.
func TestCrossRefusedBeforeSending(t *testing.T) {
	p := crossProcessor(t)
	resp := p.handle(requestBody(`{"model":"x","n":2,"messages":[{"role":"user","content":"hi"}]}`))
	ir := resp.GetImmediateResponse()
	require.NotNil(t, ir, "%v", resp)
	assert.EqualValues(t, 400, ir.GetStatus().GetCode())
	assert.Equal(t, "unsupported_by_backend", gjson.GetBytes(ir.GetBody(), "error.code").String())
	assert.Equal(t, "streamgate_unsupported_by_backend", ir.GetDetails())
}

// upstreamMsg is the upstream filter's first message: the request headers
// with the picked endpoint's backend as an attribute.
func upstreamMsg(backend string, headers map[string]string) *extprocsvcv3.ProcessingRequest {
	hm := &corev3.HeaderMap{}
	for k, v := range headers {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
	}
	return &extprocsvcv3.ProcessingRequest{
		Request: &extprocsvcv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocsvcv3.HttpHeaders{Headers: hm}},
		Attributes: map[string]*structpb.Struct{contract.ExtProcFilter: {Fields: map[string]*structpb.Value{
			contract.UpstreamAttribute: structpb.NewStringValue(backend),
		}}},
	}
}

// TestUpstreamAttempt: the upstream filter makes of the client's body each
// attempt's request: for the OpenAI primary its model name and key on the
// client's path; for the Anthropic fallback a Messages request with its
// own model name, path, Host and key.
func TestUpstreamAttempt(t *testing.T) {
	t.Setenv("CROSS_VLLM_KEY", "vllm-secret")
	t.Setenv("CROSS_CLAUDE_KEY", "claude-secret")
	cfg, err := config.Parse("test.yaml", []byte(crossConfig))
	require.NoError(t, err)
	a, err := auth.New(t.Context(), cfg, auth.Options{})
	require.NoError(t, err)
	s := NewServer(cfg, NewRoutes(cfg, 0), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	s.SetAuth(a)
	body := `{"model":"x","max_tokens":9,"messages":[{"role":"user","content":"hi"}]}`
	attempt := func(backend string) (map[string]string, []byte) {
		st := extproctest.NewStream(t.Context(),
			upstreamMsg(backend, map[string]string{contract.PathHeader: "/v1/chat/completions?debug=1", contract.ModelHeader: "x", contract.VersionHeader: "default", ":path": "/elsewhere"}),
			requestBody(body))
		require.NoError(t, s.Process(st))
		require.Len(t, st.Sent, 2)
		assert.NotNil(t, st.Sent[0].GetRequestHeaders())
		common := st.Sent[1].GetRequestBody().GetResponse()
		return setHeaders(common.GetHeaderMutation()), common.GetBodyMutation().GetBody()
	}

	set, out := attempt("vllm")
	assert.Equal(t, "/v1/chat/completions", set[":path"], "the client's path, query parameters filtered")
	assert.Equal(t, "Bearer vllm-secret", set["authorization"])
	assert.Equal(t, "127.0.0.1:8000", set[":authority"])
	assert.Equal(t, "x-vllm", gjson.GetBytes(out, "model").String())
	assert.Equal(t, itoa(len(out)), set["content-length"])

	set, out = attempt("claude")
	assert.Equal(t, "/v1/messages", set[":path"])
	assert.Equal(t, "claude-secret", set["x-api-key"])
	assert.NotContains(t, set, "authorization", "the primary's key stays with the primary")
	assert.NotEmpty(t, set["anthropic-version"])
	assert.Equal(t, "claude-x", gjson.GetBytes(out, "model").String(), "the fallback's own model")
	assert.Equal(t, "hi", gjson.GetBytes(out, "messages.0.content.0.text").String())
	assert.Equal(t, itoa(len(out)), set["content-length"])

	set, out = attempt("gemini")
	assert.Equal(t, "/v1beta/models/x-vllm:generateContent", set[":path"], "no fallback model: the version's")
	assert.Equal(t, "claude-secret", set["x-goog-api-key"])
	assert.Equal(t, "hi", gjson.GetBytes(out, "contents.0.parts.0.text").String())
}

// TestCrossRealtimeRefused: a Realtime session cannot move across
// protocols (nor be buffered by the upstream filter): refused at once.
func TestCrossRealtimeRefused(t *testing.T) {
	p := newTranslationProcessor(t, crossConfig)
	resp := p.handle(&extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocsvcv3.HttpHeaders{
		Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: ":method", RawValue: []byte("GET")}, {Key: ":path", RawValue: []byte("/v1/realtime?model=x")}, {Key: "upgrade", RawValue: []byte("websocket")},
		}},
		EndOfStream: true,
	}}})
	require.NotNil(t, resp.GetImmediateResponse(), "%v", resp)
	assert.EqualValues(t, 400, resp.GetImmediateResponse().GetStatus().GetCode())
}

// TestUpstreamAttemptSignsForBedrock: an attempt on Bedrock (Claude on
// InvokeModel here) is signed for its path and body alone.
func TestUpstreamAttemptSignsForBedrock(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	cfg, err := config.Parse("test.yaml", []byte(`backends:
  - name: vllm
    protocol: openai
    endpoints: [127.0.0.1:8000]
  - name: br
    protocol: bedrock
    endpoints: [127.0.0.1:9443]
    aws: {region: us-east-1, api: invoke}
models:
  - name: x
    backend: vllm
    fallbacks: [br]
    fallback_models: {br: "anthropic.claude-3-haiku-20240307-v1:0"}
`))
	require.NoError(t, err)
	a, err := auth.New(t.Context(), cfg, auth.Options{})
	require.NoError(t, err)
	s := NewServer(cfg, NewRoutes(cfg, 0), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	s.SetAuth(a)
	st := extproctest.NewStream(t.Context(),
		upstreamMsg("br", map[string]string{contract.PathHeader: "/v1/messages", contract.ModelHeader: "x", contract.VersionHeader: "default"}),
		requestBody(`{"model":"x","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(t, s.Process(st))
	require.Len(t, st.Sent, 2)
	common := st.Sent[1].GetRequestBody().GetResponse()
	set := setHeaders(common.GetHeaderMutation())
	assert.Equal(t, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke-with-response-stream", set[":path"])
	assert.Equal(t, "bedrock-runtime.us-east-1.amazonaws.com", set[":authority"])
	assert.Contains(t, set["authorization"], "AWS4-HMAC-SHA256 Credential=AKIDTEST/")
	assert.NotEmpty(t, set["x-amz-date"])
	assert.Equal(t, "bedrock-2023-05-31", gjson.GetBytes(common.GetBodyMutation().GetBody(), "anthropic_version").String())
}

// BenchmarkUpstreamAttempt is one attempt of a cross request on a
// fallback of another protocol: the upstream stream's two messages,
// translating a chat request to Anthropic Messages and setting its key.
func BenchmarkUpstreamAttempt(b *testing.B) {
	b.Setenv("CROSS_VLLM_KEY", "vllm-secret")
	b.Setenv("CROSS_CLAUDE_KEY", "claude-secret")
	cfg, err := config.Parse("test.yaml", []byte(crossConfig))
	require.NoError(b, err)
	a, err := auth.New(b.Context(), cfg, auth.Options{})
	require.NoError(b, err)
	s := NewServer(cfg, NewRoutes(cfg, 0), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	s.SetAuth(a)
	head := upstreamMsg("claude", map[string]string{contract.PathHeader: "/v1/chat/completions", contract.ModelHeader: "x", contract.VersionHeader: "default"})
	body := requestBody(`{"model":"x","max_tokens":50,"stream":true,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"` + strings.Repeat("word ", 180) + `"}]}`)
	b.ReportAllocs()
	for b.Loop() {
		st := extproctest.NewStream(b.Context(), head, body)
		if err := s.Process(st); err != nil {
			b.Fatal(err)
		}
	}
}

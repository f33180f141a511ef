package extproc

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

func testConfig(t testing.TB) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(`
gateway:
  max_request_body_bytes: 1024
backends:
  - name: a
    protocol: openai
    endpoints: [127.0.0.1:1]
models:
  - name: public
    backend: a
    upstream_model: private
  - name: same
    backend: a
`))
	require.NoError(t, err)
	return cfg
}

func newTestProcessor(t testing.TB) *processor {
	cfg := testConfig(t)
	return newProcessor(NewRoutes(cfg, 1), cfg.Gateway.MaxRequestBodyBytes, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
}

func reqHeaders(method, path string, endOfStream bool, extra ...string) *extprocsvcv3.ProcessingRequest {
	hs := []*corev3.HeaderValue{{Key: ":method", RawValue: []byte(method)}, {Key: ":path", RawValue: []byte(path)}}
	for i := 0; i+1 < len(extra); i += 2 {
		hs = append(hs, &corev3.HeaderValue{Key: extra[i], RawValue: []byte(extra[i+1])})
	}
	return &extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocsvcv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: hs}, EndOfStream: endOfStream},
	}}
}

// immediateStatus returns the status of an immediate response, or 0.
func immediateStatus(t *testing.T, r *extprocsvcv3.ProcessingResponse) (int, map[string]any) {
	t.Helper()
	ir := r.GetImmediateResponse()
	if ir == nil {
		return 0, nil
	}
	var body map[string]any
	require.NoError(t, json.Unmarshal(ir.GetBody(), &body))
	return int(ir.GetStatus().GetCode()), body
}

func TestProcessorRoutesAndRewrites(t *testing.T) {
	p := newTestProcessor(t)
	hr := p.handle(reqHeaders("POST", "/v1/chat/completions?x=1", false, "x-streamgate-backend", "evil", "content-length", "40"))
	require.NotNil(t, hr.GetRequestHeaders())
	assert.Equal(t, []string{"x-streamgate-backend"}, hr.GetRequestHeaders().GetResponse().GetHeaderMutation().GetRemoveHeaders())

	assert.Nil(t, hr.GetModeOverride(), "by default a pass-through request never asks for its response")

	br := p.handle(bodyMsg(`{"model":"public","stream":true,"messages":[]}`))
	assert.True(t, p.done(br), "the ext_proc stream ends after the body answer")
	common := br.GetRequestBody().GetResponse()
	require.NotNil(t, common)
	assert.True(t, common.GetClearRouteCache())
	hs := setHeaders(common.GetHeaderMutation())
	assert.Equal(t, "a", hs["x-streamgate-backend"])
	newBody := common.GetBodyMutation().GetBody()
	assert.JSONEq(t, `{"model":"private","stream":true,"messages":[]}`, string(newBody))
	assert.Equal(t, itoa(len(newBody)), hs["content-length"])
	assert.True(t, p.info.Stream)
}

func TestProcessorKeepsBodyWhenModelNamesMatch(t *testing.T) {
	p := newTestProcessor(t)
	p.handle(reqHeaders("POST", "/v1/completions", false))
	br := p.handle(bodyMsg(`{"model":"same","prompt":"x"}`))
	common := br.GetRequestBody().GetResponse()
	assert.Nil(t, common.GetBodyMutation(), "no rewrite when the upstream name is the public one")
	assert.Equal(t, "a", setHeaders(common.GetHeaderMutation())["x-streamgate-backend"])
}

func TestProcessorRejections(t *testing.T) {
	for name, tc := range map[string]struct {
		method, path string
		headers      []string
		noBody       bool
		body         string
		status       int
		code         string
	}{
		"unknown path":           {"POST", "/v2/x", nil, false, "", http.StatusNotFound, "unknown_url"},
		"GET on chat":            {"GET", "/v1/chat/completions", nil, true, "", http.StatusMethodNotAllowed, "method_not_allowed"},
		"POST on models":         {"POST", "/v1/models", nil, false, "", http.StatusMethodNotAllowed, "method_not_allowed"},
		"no body":                {"POST", "/v1/chat/completions", nil, true, "", http.StatusBadRequest, "invalid_request"},
		"content-length too big": {"POST", "/v1/chat/completions", []string{"content-length", "2048"}, false, "", http.StatusRequestEntityTooLarge, "request_too_large"},
		"body too big":           {"POST", "/v1/chat/completions", nil, false, `{"model":"public","x":"` + strings.Repeat("a", 2000) + `"}`, http.StatusRequestEntityTooLarge, "request_too_large"},
		"malformed":              {"POST", "/v1/chat/completions", nil, false, `{"model":`, http.StatusBadRequest, "invalid_request"},
		"unknown model":          {"POST", "/v1/chat/completions", nil, false, `{"model":"gpt-x"}`, http.StatusNotFound, "model_not_found"},
		"model not a string":     {"POST", "/v1/chat/completions", nil, false, `{"model":7}`, http.StatusBadRequest, "invalid_request"},
		"stream not a bool":      {"POST", "/v1/chat/completions", nil, false, `{"model":"public","stream":"yes"}`, http.StatusBadRequest, "invalid_request"},
		"escaped model key":      {"POST", "/v1/chat/completions", nil, false, `{"mod\u0065l":"public"}`, http.StatusBadRequest, "invalid_request"},
	} {
		t.Run(name, func(t *testing.T) {
			p := newTestProcessor(t)
			r := p.handle(reqHeaders(tc.method, tc.path, tc.noBody, tc.headers...))
			if r.GetImmediateResponse() == nil {
				r = p.handle(bodyMsg(tc.body))
			}
			status, body := immediateStatus(t, r)
			require.Equal(t, tc.status, status)
			e, _ := body["error"].(map[string]any)
			require.NotNil(t, e, "OpenAI error shape")
			assert.Equal(t, tc.code, e["code"])
			assert.NotEmpty(t, e["message"])
			assert.Equal(t, tc.status, p.status)
		})
	}
}

func TestModelsListing(t *testing.T) {
	p := newTestProcessor(t)
	status, body := immediateStatus(t, p.handle(reqHeaders("GET", "/v1/models", true)))
	require.Equal(t, http.StatusOK, status)
	data := body["data"].([]any)
	require.Len(t, data, 2)
	assert.Equal(t, "public", data[0].(map[string]any)["id"])
}

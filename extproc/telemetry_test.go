package extproc

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/telemetry"
)

// fakeClock advances by step on every read.
type fakeClock struct {
	t    time.Time
	step time.Duration
}

func (c *fakeClock) now() time.Time {
	c.t = c.t.Add(c.step)
	return c.t
}

func telemetryProcessor(t testing.TB, telemetryYAML string) (*processor, *prometheus.Registry, *fakeClock) {
	t.Helper()
	// Reading every response is opt-in; these tests are about that path.
	if !strings.Contains(telemetryYAML, "usage:") {
		switch {
		case strings.Contains(telemetryYAML, "telemetry: {"):
			telemetryYAML = strings.Replace(telemetryYAML, "telemetry: {", "telemetry: {usage: true, ", 1)
		case strings.Contains(telemetryYAML, "telemetry:\n"):
			telemetryYAML = strings.Replace(telemetryYAML, "telemetry:\n", "telemetry:\n  usage: true\n", 1)
		default:
			telemetryYAML += "\ntelemetry:\n  usage: true\n"
		}
	}
	cfg, err := config.Parse("test.yaml", []byte(`
backends:
  - name: a
    protocol: openai
    endpoints: [127.0.0.1:1]
models:
  - name: public
    backend: a
    upstream_model: private
`+telemetryYAML))
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	p := newProcessor(NewRoutes(cfg, 1), cfg.Gateway.MaxRequestBodyBytes, slog.New(slog.NewTextHandler(io.Discard, nil)), m)
	clock := &fakeClock{t: time.Unix(1000, 0), step: 0}
	p.obs.set = NewTelemetry(cfg)
	p.obs.set.now = clock.now
	p.obs.start = clock.now()
	return p, reg, clock
}

func respHeaders(status, contentType string) *extprocsvcv3.ProcessingRequest {
	return &extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocsvcv3.HttpHeaders{
		Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: ":status", RawValue: []byte(status)}, {Key: "content-type", RawValue: []byte(contentType)}}},
	}}}
}

func respBody(s string, end bool) *extprocsvcv3.ProcessingRequest {
	return &extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocsvcv3.HttpBody{Body: []byte(s), EndOfStream: end}}}
}

const usageStream = `data: {"model":"private","choices":[{"delta":{"content":"hi"}}]}

data: {"model":"private","choices":[{"delta":{"content":" there"}}]}

data: {"model":"private","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":5}}

data: [DONE]

`

func TestTelemetryReadsStreamUsage(t *testing.T) {
	p, reg, clock := telemetryProcessor(t, `telemetry: {prices: {public: {input_per_million: 2, output_per_million: 10}}}`)
	p.Tenant = "acme"
	hr := p.handle(reqHeaders("POST", "/v1/chat/completions", false))
	require.NotNil(t, hr.GetModeOverride(), "telemetry asks for the response headers without limits")
	assert.Equal(t, extprocv3.ProcessingMode_SEND, hr.GetModeOverride().GetResponseHeaderMode())

	br := p.handle(bodyMsg(`{"model":"public","stream":true,"messages":[]}`))
	sent := string(br.GetRequestBody().GetResponse().GetBodyMutation().GetBody())
	assert.Contains(t, sent, `"stream_options":{"include_usage":true}`)

	rh := p.handle(respHeaders("200", "text/event-stream"))
	assert.Equal(t, extprocv3.ProcessingMode_STREAMED, rh.GetModeOverride().GetResponseBodyMode())

	clock.t = clock.t.Add(150 * time.Millisecond) // first chunk 150 ms after the request
	i := strings.Index(usageStream, "data: {\"model\":\"private\",\"choices\":[]")
	first := p.handle(respBody(usageStream[:i], false))
	assert.Nil(t, first.GetResponseBody().GetResponse(), "content passes unchanged")
	clock.t = clock.t.Add(400 * time.Millisecond)
	last := p.handle(respBody(usageStream[i:], true))
	out := string(last.GetResponseBody().GetResponse().GetBodyMutation().GetBody())
	assert.Equal(t, "data: [DONE]\n\n", out, "the usage chunk the gateway asked for is stripped")

	md := last.GetDynamicMetadata().GetFields()[contract.MetadataNamespace].GetStructValue().GetFields()
	require.NotNil(t, md, "usage reaches the access log as dynamic metadata")
	assert.InDelta(t, 11, md["input_tokens"].GetNumberValue(), 0)
	assert.InDelta(t, 5, md["output_tokens"].GetNumberValue(), 0)
	assert.InDelta(t, 150, md["ttft_ms"].GetNumberValue(), 0)
	assert.InDelta(t, (11*2+5*10)/1e6, md["cost_usd"].GetNumberValue(), 1e-15)
	assert.Equal(t, "private", md["response_model"].GetStringValue())

	p.finish()
	labels := prometheus.Labels{"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai", "gen_ai_request_model": "public",
		"gen_ai_response_model": "private", "streamgate_backend": "a"}
	assertHistogram(t, reg, "gen_ai_server_time_to_first_token_seconds", labels, 1, 0.150)
	assertHistogram(t, reg, "gen_ai_server_time_per_output_token_seconds", labels, 1, 0.400/4)
	labels["error_type"] = ""
	assertHistogram(t, reg, "gen_ai_server_request_duration_seconds", labels, 1, 0.550)
	delete(labels, "error_type")
	labels["gen_ai_token_type"] = "input"
	assertHistogram(t, reg, "gen_ai_client_token_usage", labels, 1, 11)
	labels["gen_ai_token_type"] = "output"
	assertHistogram(t, reg, "gen_ai_client_token_usage", labels, 1, 5)
	// The config names no tenants: a header's tenant is not a label value.
	assert.InDelta(t, 1, requestsTotal(t, reg, "other", "public", "a", "200"), 0)
}

func TestTelemetryOffReadsNothing(t *testing.T) {
	p, reg, _ := telemetryProcessor(t, "telemetry: {usage: false, tenant_label: false}\n")
	p.Tenant = "acme"
	hr := p.handle(reqHeaders("POST", "/v1/chat/completions", false))
	assert.Nil(t, hr.GetModeOverride())
	br := p.handle(bodyMsg(`{"model":"public","stream":true,"messages":[]}`))
	assert.NotContains(t, string(br.GetRequestBody().GetResponse().GetBodyMutation().GetBody()), "include_usage")
	p.finish()
	assert.InDelta(t, 1, requestsTotal(t, reg, "", "public", "a", "routed"), 0, "no tenant label")
	n, err := testutil.GatherAndCount(reg, "gen_ai_client_token_usage")
	require.NoError(t, err)
	assert.Zero(t, n, "no usage is reported when it was not read")
}

func TestTelemetryUnknownResponseModelIsOther(t *testing.T) {
	p, reg, _ := telemetryProcessor(t, "")
	p.handle(reqHeaders("POST", "/v1/chat/completions", false))
	p.handle(bodyMsg(`{"model":"public","messages":[]}`))
	p.handle(respHeaders("200", "application/json"))
	p.handle(respBody(`{"model":"client-chosen-`+strings.Repeat("x", 40)+`","usage":{"prompt_tokens":3,"completion_tokens":4}}`, true))
	p.finish()
	assertHistogram(t, reg, "gen_ai_client_token_usage", prometheus.Labels{"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai",
		"gen_ai_request_model": "public", "gen_ai_response_model": "other", "gen_ai_token_type": "output", "streamgate_backend": "a"}, 1, 4)
}

func TestTelemetryRefusalHasErrorType(t *testing.T) {
	p, reg, _ := telemetryProcessor(t, "")
	p.handle(reqHeaders("POST", "/v1/chat/completions", false))
	r := p.handle(bodyMsg(`{"model":"gpt-unknown","messages":[]}`))
	require.NotNil(t, r.GetImmediateResponse())
	p.finish()
	assertHistogram(t, reg, "gen_ai_server_request_duration_seconds", prometheus.Labels{"gen_ai_operation_name": "chat", "gen_ai_provider_name": "",
		"gen_ai_request_model": "other", "gen_ai_response_model": "", "streamgate_backend": "", "error_type": "model_not_found"}, 1, 0)
	n, err := testutil.GatherAndCount(reg, "gen_ai_server_time_to_first_token_seconds")
	require.NoError(t, err)
	assert.Zero(t, n)
}

// assertHistogram checks one histogram series' count and sum.
// requestsTotal is the value of streamgate_requests_total for one series,
// 0 when it does not exist.
func requestsTotal(t *testing.T, g prometheus.Gatherer, tenant, model, backend, status string) float64 {
	t.Helper()
	fams, err := g.Gather()
	require.NoError(t, err)
	want := map[string]string{"tenant": tenant, "model": model, "backend": backend, "status": status}
	for _, f := range fams {
		if f.GetName() != "streamgate_requests_total" {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func assertHistogram(t *testing.T, g prometheus.Gatherer, name string, labels prometheus.Labels, count uint64, sum float64) {
	t.Helper()
	fams, err := g.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; !ok || v != l.GetValue() {
					continue next
				}
			}
			assert.Equal(t, count, m.GetHistogram().GetSampleCount(), name)
			assert.InDelta(t, sum, m.GetHistogram().GetSampleSum(), 1e-9, name)
			return
		}
	}
	t.Fatalf("no %s series with labels %v", name, labels)
}

// BenchmarkTelemetryChunk is the per-chunk cost telemetry adds to a
// streamed response: the ext_proc answer for one SSE content chunk.
func BenchmarkTelemetryChunk(b *testing.B) {
	p, _, _ := telemetryProcessor(b, "")
	p.handle(reqHeaders("POST", "/v1/chat/completions", false))
	p.handle(bodyMsg(`{"model":"public","stream":true,"messages":[]}`))
	p.handle(respHeaders("200", "text/event-stream"))
	msg := respBody(`data: {"id":"c1","object":"chat.completion.chunk","model":"private","choices":[{"index":0,"delta":{"content":" token"}}]}`+"\n\n", false)
	b.ReportAllocs()
	for b.Loop() {
		p.handle(msg)
	}
}

func TestTelemetryTracesRequest(t *testing.T) {
	p, _, _ := telemetryProcessor(t, "")
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	p.obs.tracer = telemetry.NewTracerFrom(tp)
	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	p.handle(reqHeaders("POST", "/v1/chat/completions", false, "x-request-id", "req-1", "traceparent", "00-"+clientTrace+"-00f067aa0ba902b7-01"))
	br := p.handle(bodyMsg(`{"model":"public","messages":[]}`))
	tp0 := setHeaders(br.GetRequestBody().GetResponse().GetHeaderMutation())["traceparent"]
	require.NotEmpty(t, tp0, "the backend gets the request span as parent")
	parts := strings.Split(tp0, "-")
	require.Len(t, parts, 4)
	assert.Equal(t, clientTrace, parts[1], "same trace as the client's")
	assert.NotEqual(t, "00f067aa0ba902b7", parts[2], "a new span under the client's")
	md := br.GetDynamicMetadata().GetFields()[contract.MetadataNamespace].GetStructValue().GetFields()
	assert.Equal(t, clientTrace, md["trace_id"].GetStringValue(), "the access log carries the trace id")

	p.handle(respHeaders("200", "application/json"))
	p.handle(respBody(`{"model":"private","usage":{"prompt_tokens":3,"completion_tokens":4}}`, true))
	p.finish()
	spans := exp.GetSpans()
	require.Len(t, spans, 1)
	s := spans[0]
	assert.Equal(t, "chat public", s.Name)
	assert.Equal(t, parts[2], s.SpanContext.SpanID().String())
	assert.Equal(t, "00f067aa0ba902b7", s.Parent.SpanID().String())
	attrs := map[string]any{}
	for _, kv := range s.Attributes {
		attrs[string(kv.Key)] = kv.Value.AsInterface()
	}
	assert.Equal(t, "req-1", attrs["streamgate.request_id"])
	assert.Equal(t, "chat", attrs["gen_ai.operation.name"])
	assert.Equal(t, "openai", attrs["gen_ai.provider.name"])
	assert.Equal(t, "public", attrs["gen_ai.request.model"])
	assert.Equal(t, "private", attrs["gen_ai.response.model"])
	assert.EqualValues(t, 3, attrs["gen_ai.usage.input_tokens"])
	assert.EqualValues(t, 4, attrs["gen_ai.usage.output_tokens"])
	assert.NotContains(t, attrs, "error.type")
}

// FuzzTelemetryResponseBody feeds arbitrary backend bytes, split in two
// chunks, through the telemetry response path of a stream whose usage the
// gateway asked for. What is forwarded never grows, and a body without a
// usage object passes byte for byte.
func FuzzTelemetryResponseBody(f *testing.F) {
	f.Add([]byte(usageStream), 40)
	f.Add([]byte("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\r\n\r\ndata: [DONE]\r\n\r\n"), 3)
	f.Add([]byte("data: {\"model\":7}\n\ndata: {\"usage\":"), 0)
	f.Fuzz(func(t *testing.T, body []byte, cut int) {
		p, _, _ := telemetryProcessor(t, "")
		p.handle(reqHeaders("POST", "/v1/chat/completions", false))
		p.handle(bodyMsg(`{"model":"public","stream":true,"messages":[]}`))
		p.handle(respHeaders("200", "text/event-stream"))
		if cut < 0 {
			cut = -cut
		}
		cut %= len(body) + 1
		var out []byte
		for i, part := range [][]byte{body[:cut], body[cut:]} {
			r := p.handle(respBody(string(part), i == 1))
			switch m := r.GetResponseBody().GetResponse().GetBodyMutation(); {
			case m == nil:
				out = append(out, part...)
			case m.GetClearBody():
			default:
				out = append(out, m.GetBody()...)
			}
		}
		p.finish()
		require.LessOrEqual(t, len(out), len(body))
		if !strings.Contains(string(body), `"usage"`) {
			require.Equal(t, string(body), string(out))
		}
	})
}

func TestTelemetryOffWithLimitsSkipsUnreadResponses(t *testing.T) {
	p, reg, _ := telemetryProcessor(t, "telemetry: {usage: false}\n")
	p.handle(reqHeaders("POST", "/v1/chat/completions", false))
	p.handle(bodyMsg(`{"model":"public","messages":[]}`))
	// Limits asked for the response headers but hold nothing: the body
	// passes unread, so the request has no known duration.
	p.lim = &limitState{}
	rh := p.handle(respHeaders("200", "application/json"))
	assert.Nil(t, rh.GetModeOverride(), "the body is not asked for")
	p.finish()
	assert.InDelta(t, 1, requestsTotal(t, reg, "", "public", "a", "200"), 0)
	n, err := testutil.GatherAndCount(reg, "gen_ai_server_request_duration_seconds")
	require.NoError(t, err)
	assert.Zero(t, n, "no duration for a response whose end was not seen")
}

package e2e

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	collectortracev1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// collector is an OTLP/gRPC trace receiver that keeps every span.
type collector struct {
	collectortracev1.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracev1.Span
}

func (c *collector) Export(_ context.Context, req *collectortracev1.ExportTraceServiceRequest) (*collectortracev1.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			c.spans = append(c.spans, ss.GetSpans()...)
		}
	}
	return &collectortracev1.ExportTraceServiceResponse{}, nil
}

// span returns the span whose streamgate.request_id is id, or nil.
func (c *collector) span(id string) *tracev1.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.spans {
		for _, kv := range s.GetAttributes() {
			if kv.GetKey() == "streamgate.request_id" && kv.GetValue().GetStringValue() == id {
				return s
			}
		}
	}
	return nil
}

func startCollector(t *testing.T) (*collector, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c := &collector{}
	gs := grpc.NewServer()
	collectortracev1.RegisterTraceServiceServer(gs, c)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return c, lis.Addr().String()
}

func TestTracing(t *testing.T) {
	c, addr := startCollector(t)
	e := startGateway(t, strings.Replace(defaultConfig, "telemetry:\n", "telemetry:\n  tracing: {endpoint: \""+addr+"\", insecure: true}\n", 1))
	const clientTrace = "0af7651916cd43dd8448eb211c80319c"
	resp, err := postTo(t.Context(), e, chatBody("model-a", true, "trace me"), map[string]string{
		"traceparent": "00-" + clientTrace + "-b7ad6b7169203331-01", "x-e2e-tap": "trace-1",
	})
	require.NoError(t, err)
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	id := resp.Header.Get("x-request-id")

	sent := e.backendA.tap.requestHeaders("trace-1").Get("traceparent")
	parts := strings.Split(sent, "-")
	require.Len(t, parts, 4, "the backend receives a traceparent: %q", sent)
	assert.Equal(t, clientTrace, parts[1], "in the client's trace")

	line := accessLine(t, e, id)
	assert.Equal(t, clientTrace, line["trace_id"], "the access log line names the trace")

	// Spans are exported in batches, every 5 s by default.
	var span *tracev1.Span
	require.Eventually(t, func() bool { span = c.span(id); return span != nil }, 15*time.Second, 50*time.Millisecond, "span for request %s", id)
	assert.Equal(t, clientTrace, hex.EncodeToString(span.GetTraceId()))
	assert.Equal(t, parts[2], hex.EncodeToString(span.GetSpanId()), "the backend's parent is the request span")
	assert.Equal(t, "b7ad6b7169203331", hex.EncodeToString(span.GetParentSpanId()))
	assert.Equal(t, "chat model-a", span.GetName())
	attrs := map[string]string{}
	for _, kv := range span.GetAttributes() {
		attrs[kv.GetKey()] = kv.GetValue().String()
	}
	for _, k := range []string{"gen_ai.operation.name", "gen_ai.request.model", "gen_ai.response.model", "gen_ai.provider.name", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"} {
		assert.Contains(t, attrs, k)
	}
	assert.NotContains(t, e.logs.String(), "trace me")
}

// TestServiceTracing: a service request gets a span in the client's trace
// ("service raw…", covering the gateway's policy), and the service
// receives a traceparent naming that span as its parent.
func TestServiceTracing(t *testing.T) {
	c, addr := startCollector(t)
	svc, svcAddr := startRawService(t)
	e := startGateway(t, rawGatewayConfig(svcAddr)+"telemetry:\n  tracing: {endpoint: \""+addr+"\", insecure: true}\n")
	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.gateway+"/raw/echo", strings.NewReader("ping"))
	require.NoError(t, err)
	req.Header.Set("authorization", "Bearer "+svcKeyAcme)
	req.Header.Set("traceparent", "00-"+clientTrace+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	id := resp.Header.Get("x-request-id")

	svc.mu.Lock()
	sent := svc.seen[len(svc.seen)-1].Header.Get("traceparent")
	svc.mu.Unlock()
	parts := strings.Split(sent, "-")
	require.Len(t, parts, 4, "the service receives a traceparent: %q", sent)
	assert.Equal(t, clientTrace, parts[1])

	var span *tracev1.Span
	require.Eventually(t, func() bool { span = c.span(id); return span != nil }, 15*time.Second, 50*time.Millisecond, "span for service request %s", id)
	assert.Equal(t, clientTrace, hex.EncodeToString(span.GetTraceId()))
	assert.Equal(t, parts[2], hex.EncodeToString(span.GetSpanId()), "the service's parent is the gateway's span")
	assert.Equal(t, "00f067aa0ba902b7", hex.EncodeToString(span.GetParentSpanId()))
	assert.True(t, strings.HasPrefix(span.GetName(), "service raw"), span.GetName())
	attrs := map[string]string{}
	for _, kv := range span.GetAttributes() {
		attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	assert.Equal(t, "raw", attrs["streamgate.service"])
	assert.Equal(t, "acme", attrs["streamgate.tenant"])
}

package telemetry

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamgate/streamgate/config"
)

// Tracer starts one span per request and propagates W3C trace context to
// backends. A nil *Tracer traces nothing. Safe for concurrent use.
type Tracer struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// NewTracer exports spans over OTLP/gRPC to cfg.Endpoint in batches. The
// returned shutdown flushes and stops the exporter.
func NewTracer(ctx context.Context, cfg *config.Tracing, version string) (*Tracer, func(context.Context) error, error) {
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.Endpoint)}
	if cfg.Insecure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot create otlp exporter: %w", err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "streamgate"), attribute.String("service.version", version))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio()))),
	)
	return NewTracerFrom(tp), tp.Shutdown, nil
}

// NewTracerFrom traces with an existing provider (tests use an in-memory one).
func NewTracerFrom(tp trace.TracerProvider) *Tracer {
	return &Tracer{tracer: tp.Tracer("github.com/streamgate/streamgate"), prop: propagation.TraceContext{}}
}

// Span is one request's span. The zero Span (from a nil Tracer) does nothing.
type Span struct {
	t    *Tracer
	span trace.Span
}

// Start begins a request's span at start, as a child of the trace context
// the client sent (traceparent, tracestate; empty strings: a new trace).
func (t *Tracer) Start(start time.Time, traceparent, tracestate string) Span {
	if t == nil {
		return Span{}
	}
	carrier := propagation.MapCarrier{}
	if traceparent != "" {
		carrier["traceparent"] = traceparent
		carrier["tracestate"] = tracestate
	}
	ctx := t.prop.Extract(context.Background(), carrier)
	_, span := t.tracer.Start(ctx, "gen_ai", trace.WithTimestamp(start), trace.WithSpanKind(trace.SpanKindClient))
	return Span{t: t, span: span}
}

// Traceparent is the W3C traceparent header a backend should receive, ""
// when not traced or not sampled.
func (s Span) Traceparent() string {
	if s.span == nil || !s.span.SpanContext().IsSampled() {
		return ""
	}
	c := propagation.MapCarrier{}
	s.t.prop.Inject(trace.ContextWithSpan(context.Background(), s.span), c)
	return c["traceparent"]
}

// TraceID is the span's trace id in hex, "" when not traced or not sampled.
func (s Span) TraceID() string {
	if s.span == nil || !s.span.SpanContext().IsSampled() {
		return ""
	}
	return s.span.SpanContext().TraceID().String()
}

// End names the span after the operation and model and closes it with
// the GenAI attributes of r.
func (s Span) End(r *Record) {
	if s.span == nil {
		return
	}
	name := r.Operation
	if name == "" {
		name = "http"
	}
	if r.Model != "" && r.Model != Other {
		name += " " + r.Model
	}
	s.span.SetName(name)
	attrs := []attribute.KeyValue{
		attribute.String("streamgate.request_id", r.RequestID),
		attribute.String("url.path", r.Endpoint),
	}
	if r.Status != 0 {
		attrs = append(attrs, attribute.Int("http.response.status_code", r.Status))
	}
	if r.Operation != "" {
		attrs = append(attrs, attribute.String("gen_ai.operation.name", r.Operation), attribute.String("gen_ai.request.model", r.Model))
	}
	for _, kv := range []struct{ k, v string }{
		{"gen_ai.provider.name", r.Provider}, {"gen_ai.response.model", r.ResponseModel},
		{"streamgate.tenant", r.Tenant}, {"streamgate.backend", r.Backend}, {"streamgate.version", r.Version},
		{"streamgate.limit_decision", r.Decision},
	} {
		if kv.v != "" {
			attrs = append(attrs, attribute.String(kv.k, kv.v))
		}
	}
	if r.UsageKnown {
		attrs = append(attrs, attribute.Int64("gen_ai.usage.input_tokens", r.InputTokens), attribute.Int64("gen_ai.usage.output_tokens", r.OutputTokens))
	}
	if d, ok := r.TTFT(); ok {
		attrs = append(attrs, attribute.Float64("streamgate.ttft_seconds", d.Seconds()))
	}
	if et := r.ErrorType(); et != "" {
		attrs = append(attrs, attribute.String("error.type", et))
		s.span.SetStatus(codes.Error, et)
	}
	s.span.SetAttributes(attrs...)
	end := r.End
	if end.IsZero() {
		end = r.Finished
	}
	s.span.End(trace.WithTimestamp(end))
}

// EndService names the span of a service request (docs/services.md)
// "service SERVICE.OPERATION" and closes it at end. The span covers the
// gateway's part of the request (authentication, authorization, limits);
// the service continues the trace from the traceparent it was sent.
// status is Streamgate's own answer (a refusal), 0 when it let the request
// through; errType names the refusal.
func (s Span) EndService(service, operation, tenant, requestID, path string, status int, errType string, end time.Time) {
	if s.span == nil {
		return
	}
	name := "service " + service
	if operation != "" {
		name += "." + operation
	}
	s.span.SetName(name)
	attrs := []attribute.KeyValue{
		attribute.String("streamgate.request_id", requestID),
		attribute.String("url.path", path),
		attribute.String("streamgate.service", service),
	}
	for _, kv := range []struct{ k, v string }{{"streamgate.operation", operation}, {"streamgate.tenant", tenant}} {
		if kv.v != "" {
			attrs = append(attrs, attribute.String(kv.k, kv.v))
		}
	}
	if status != 0 {
		attrs = append(attrs, attribute.Int("http.response.status_code", status))
	}
	if errType != "" {
		attrs = append(attrs, attribute.String("error.type", errType))
		s.span.SetStatus(codes.Error, errType)
	}
	s.span.SetAttributes(attrs...)
	s.span.End(trace.WithTimestamp(end))
}

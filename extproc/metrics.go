package extproc

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamgate/streamgate/extproc/telemetry"
)

// Metrics are the ext_proc server's Prometheus collectors: the request and
// GenAI metrics of package telemetry, and the gRPC call counters. A nil
// *Metrics records nothing.
type Metrics struct {
	t    *telemetry.Metrics
	grpc *prometheus.CounterVec
	// grpcMessages and grpcBytes are fed by AccessLog when a call ends.
	grpcMessages, grpcBytes *prometheus.CounterVec
	// unread counts limited responses charged their reservation because
	// their usage could not be read (usageUnread).
	unread *prometheus.CounterVec
	// rt counts Realtime sessions (realtime_metrics.go).
	rt *realtimeMetrics
	// svc counts service requests (service_metrics.go).
	svc *serviceMetrics
}

// NewMetrics registers Streamgate's request metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{t: telemetry.NewMetrics(reg)}
	m.grpc = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "streamgate_grpc_streams_total",
		Help: "gRPC calls (streams) seen by the ext_proc server, by public model, backend, KServe v2 method and the gRPC status Streamgate answered with (\"routed\" when forwarded).",
	}, []string{"model", "backend", "method", "code"})
	m.grpcMessages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "streamgate_grpc_messages_total",
		Help: "gRPC messages of routed calls, by public model, backend cluster and direction (request, response); counted when a call ends.",
	}, []string{"model", "backend", "direction"})
	m.grpcBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "streamgate_grpc_bytes_total",
		Help: "gRPC body bytes (message frames) of routed calls, by public model, backend cluster and direction; counted when a call ends.",
	}, []string{"model", "backend", "direction"})
	m.unread = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "streamgate_usage_unread_total",
		Help: "Limited responses whose usage could not be read, by reason (missing: the response had no readable usage; incomplete: it stopped early; too_large: a streamed event outgrew the meter's 1 MiB bound: these were charged (at least) their reserved output tokens; estimated: Envoy reported no usage for a cut stream, charged an estimate from the bytes the backend sent).",
	}, []string{"reason"})
	for _, r := range unreadReasons {
		m.unread.WithLabelValues(r)
	}
	reg.MustRegister(m.grpc, m.grpcMessages, m.grpcBytes, m.unread)
	m.rt = newRealtimeMetrics(reg)
	m.svc = newServiceMetrics(reg)
	return m
}

// Telemetry returns the collectors, for the usage sink; nil for a nil m.
func (m *Metrics) Telemetry() *telemetry.Metrics { return m.tel() }

func (m *Metrics) tel() *telemetry.Metrics {
	if m == nil {
		return nil
	}
	return m.t
}

// usageUnread counts a response charged its reservation; reason is one of
// unreadReasons.
func (m *Metrics) usageUnread(reason string) {
	if m != nil {
		m.unread.WithLabelValues(reason).Inc()
	}
}

// observeGRPC counts a finished gRPC call (streamgate_requests_total and
// the GenAI metrics are recorded by telemetry for every request).
func (m *Metrics) observeGRPC(p *processor) {
	if m == nil || p.path == "" || !p.grpc || p.svc.entry != nil {
		return
	}
	model, backend, code := "other", "", "routed"
	if p.route != nil {
		model, backend = p.route.Model, p.route.Backend
	}
	if p.answered {
		code = p.grpcCode.String()
	}
	m.grpc.WithLabelValues(model, backend, p.grpcMethod, code).Inc()
}

package extproc

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the ext_proc server's Prometheus collectors. A nil *Metrics
// records nothing.
type Metrics struct {
	requests *prometheus.CounterVec
	grpc     *prometheus.CounterVec
	// grpcMessages and grpcBytes are fed by AccessLog when a call ends.
	grpcMessages, grpcBytes *prometheus.CounterVec
}

// NewMetrics registers Streamgate's request metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamgate_requests_total",
			Help: "Requests seen by the ext_proc server, by public model, backend and the status Streamgate answered with (\"routed\" when forwarded).",
		}, []string{"model", "backend", "status"}),
	}
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
	reg.MustRegister(m.requests, m.grpc, m.grpcMessages, m.grpcBytes)
	return m
}

func (m *Metrics) observe(p *processor) {
	if m == nil || p.path == "" {
		return
	}
	model, backend, status := "other", "", "routed"
	if p.route != nil {
		model, backend = p.route.Model, p.route.Backend
	}
	if p.status != 0 {
		status = strconv.Itoa(p.status)
	}
	m.requests.WithLabelValues(model, backend, status).Inc()
	if p.grpc {
		code := "routed"
		if p.status != 0 {
			code = p.grpcCode.String()
		}
		m.grpc.WithLabelValues(model, backend, p.grpcMethod, code).Inc()
	}
}

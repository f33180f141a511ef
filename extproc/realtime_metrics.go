package extproc

import (
	"strconv"

	alsdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"github.com/prometheus/client_golang/prometheus"
)

// realtimeMetrics count Realtime WebSocket sessions, fed by AccessLog from
// the entry Envoy writes when a session ends (contract.RealtimeLog).
type realtimeMetrics struct {
	sessions *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bytes    *prometheus.CounterVec
}

// sessionBuckets bound session durations: a second to an hour.
var sessionBuckets = []float64{1, 5, 15, 60, 300, 900, 3600}

func newRealtimeMetrics(reg prometheus.Registerer) *realtimeMetrics {
	m := &realtimeMetrics{
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamgate_realtime_sessions_total",
			Help: "Realtime WebSocket sessions routed to a backend, by public model, backend cluster and the backend's handshake status (101 for an upgraded session); counted when a session ends.",
		}, []string{"model", "backend", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "streamgate_realtime_session_duration_seconds",
			Help:    "Duration of upgraded Realtime WebSocket sessions, by public model and backend cluster.",
			Buckets: sessionBuckets,
		}, []string{"model", "backend"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamgate_realtime_bytes_total",
			Help: "WebSocket frame bytes of Realtime sessions, by public model, backend cluster and direction (request: client to backend, response: backend to client); counted when a session ends.",
		}, []string{"model", "backend", "direction"}),
	}
	reg.MustRegister(m.sessions, m.duration, m.bytes)
	return m
}

// recordRealtime counts one finished Realtime session the gateway routed.
// Labels are bounded by the routing table as for gRPC calls.
func (a *AccessLog) recordRealtime(e *alsdatav3.HTTPAccessLogEntry) {
	if a.metrics == nil || a.metrics.rt == nil {
		return
	}
	cp := e.GetCommonProperties()
	model, backend, ok := a.routedLabels(e)
	if !ok {
		return
	}
	in, out := e.GetRequest().GetRequestBodyBytes(), e.GetResponse().GetResponseBodyBytes()
	if in > maxCallBytes || out > maxCallBytes {
		a.log.Warn("access log entry dropped: implausible counts", "backend", backend, "request_bytes", in, "response_bytes", out)
		return
	}
	m := a.metrics.rt
	status := e.GetResponse().GetResponseCode().GetValue()
	m.sessions.WithLabelValues(model, backend, strconv.FormatUint(uint64(status), 10)).Inc()
	if status == 101 {
		if d := cp.GetDuration(); d != nil {
			m.duration.WithLabelValues(model, backend).Observe(d.AsDuration().Seconds())
		}
	}
	m.bytes.WithLabelValues(model, backend, "request").Add(float64(in))
	m.bytes.WithLabelValues(model, backend, "response").Add(float64(out))
}

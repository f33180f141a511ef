package extproc

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// EPPMetrics are the endpoint picker's collectors (`streamgate epp`). Label
// values are bounded: endpoints are the backend's configured ones ("other"
// for an endpoint Envoy reports that the backend does not list). A nil
// *EPPMetrics records nothing.
type EPPMetrics struct {
	picks, refusals, serves *prometheus.CounterVec
	open                    prometheus.Gauge
}

// NewEPPMetrics registers the endpoint picker's metrics with reg.
func NewEPPMetrics(reg prometheus.Registerer) *EPPMetrics {
	m := &EPPMetrics{
		picks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamgate_epp_picks_total",
			Help: "Requests the endpoint picker answered with endpoints, by backend, picked (first) endpoint and pick reason.",
		}, []string{"backend", "endpoint", "reason"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamgate_epp_refusals_total",
			Help: "Requests the endpoint picker refused, by backend and error code (no_endpoint: 503, saturated: 429).",
		}, []string{"backend", "code"}),
		serves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamgate_epp_served_total",
			Help: "Responses whose serving endpoint Envoy reported (envoy.lb x-gateway-destination-endpoint-served), by backend, endpoint and whether it was a fallback rather than the picked one.",
		}, []string{"backend", "endpoint", "fallback"}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamgate_epp_streams_open",
			Help: "Open ext_proc streams: requests between their headers and the end of their response (or their refusal).",
		}),
	}
	reg.MustRegister(m.picks, m.refusals, m.serves, m.open)
	return m
}

func (m *EPPMetrics) picked(backend, endpoint, reason string) {
	if m != nil {
		m.picks.WithLabelValues(backend, endpoint, reason).Inc()
	}
}

func (m *EPPMetrics) refused(backend, code string) {
	if m != nil {
		m.refusals.WithLabelValues(backend, code).Inc()
	}
}

func (m *EPPMetrics) served(backend, endpoint string, fallback bool) {
	if m != nil {
		m.serves.WithLabelValues(backend, endpoint, strconv.FormatBool(fallback)).Inc()
	}
}

// streamOpened counts an ext_proc stream until streamClosed.
func (m *EPPMetrics) streamOpened() {
	if m != nil {
		m.open.Inc()
	}
}

func (m *EPPMetrics) streamClosed() {
	if m != nil {
		m.open.Dec()
	}
}

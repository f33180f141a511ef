package bridge

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of one delivery of a request message (the outcome label).
const (
	outcomeAck        = "ack"         // result published, message acknowledged
	outcomeNak        = "nak"         // overloaded or failed: redelivered after a backoff
	outcomeDeadLetter = "dead_letter" // refused or out of attempts: dead-lettered, acknowledged
	outcomeDuplicate  = "duplicate"   // a redelivery of a request already answered: acknowledged, not run
)

// Metrics are the bridge's Prometheus series, per source (the stream or
// topic consumed) and tenant (the credential name a request used).
type Metrics struct {
	messages *prometheus.CounterVec
	inFlight *prometheus.GaugeVec
	window   prometheus.Gauge
	lag      *prometheus.GaugeVec
	latency  *prometheus.HistogramVec
}

// NewMetrics registers the bridge's series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamgate_bridge_messages_total",
			Help: "Request messages handled by the bridge, by source, tenant (credential name) and outcome (ack, nak, dead_letter, duplicate).",
		}, []string{"source", "tenant", "outcome"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "streamgate_bridge_in_flight",
			Help: "Requests the bridge has open toward the gateway, by source.",
		}, []string{"source"}),
		window: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamgate_bridge_in_flight_limit",
			Help: "The bridge's admission window: in-flight requests it allows now (AIMD on 429/503, at most bridge.max_in_flight).",
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "streamgate_bridge_lag_messages",
			Help: "Request messages waiting in the source not yet taken by the bridge (JetStream consumer pending; Kafka high watermark less committed offset).",
		}, []string{"source"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "streamgate_bridge_latency_seconds",
			Help:    "Time from a request message entering its source to its result being published, by source.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
		}, []string{"source"}),
	}
	reg.MustRegister(m.messages, m.inFlight, m.window, m.lag, m.latency)
	return m
}

package ratelimit

import (
	"log/slog"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// StoreMetrics are the collectors of a shared store's health.
type StoreMetrics struct {
	errors prometheus.Counter
	outage prometheus.Gauge
}

// NewStoreMetrics registers the store health metrics with reg (nil: unregistered).
func NewStoreMetrics(reg prometheus.Registerer) *StoreMetrics {
	m := &StoreMetrics{
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamgate_ratelimit_store_errors_total",
			Help: "Calls to the shared rate limit store that failed.",
		}),
		outage: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamgate_ratelimit_store_outage",
			Help: "1 while the shared rate limit store is unreachable (its last call failed), else 0.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.errors, m.outage)
	}
	return m
}

// storeHealth tracks outages of a shared store: every failed call is
// counted, only the first of an outage and the recovery are logged. The
// success path costs one atomic load.
type storeHealth struct {
	log      *slog.Logger
	metrics  *StoreMetrics
	failOpen atomic.Bool // only worded in the log: the Limiter decides
	down     atomic.Bool
	failures atomic.Int64
}

func (h *storeHealth) failed(err error) {
	h.failures.Add(1)
	if h.metrics != nil {
		h.metrics.errors.Inc()
	}
	if h.down.Swap(true) {
		return
	}
	if h.metrics != nil {
		h.metrics.outage.Set(1)
	}
	if h.failOpen.Load() {
		h.log.Error("rate limit store unreachable: admitting requests without rate limits until it is back (fail_open)", "error", err)
		return
	}
	h.log.Error("rate limit store unreachable: refusing rate-limited requests with 503 until it is back (fail_closed)", "error", err)
}

func (h *storeHealth) ok() {
	if !h.down.Load() || !h.down.CompareAndSwap(true, false) {
		return
	}
	if h.metrics != nil {
		h.metrics.outage.Set(0)
	}
	h.log.Info("rate limit store reachable again", "failed_calls", h.failures.Swap(0))
}

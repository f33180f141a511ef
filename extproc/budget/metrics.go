package budget

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the budgets' Prometheus collectors. The store's outage
// gauge and error counter are the rate limit store's
// (streamgate_ratelimit_store_*): budgets share its Redis connection.
type Metrics struct {
	denied   *prometheus.CounterVec
	warnings prometheus.Counter
	spent    prometheus.Counter
	lost     prometheus.Counter
}

// NewMetrics registers the budget metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamgate_budget_decisions_total",
			Help: "Budget decisions other than a plain admission: exceeded (refused, 429), store_unavailable (refused, 503), fail_open (admitted unreserved while the store is down).",
		}, []string{"decision"}),
		warnings: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamgate_budget_warnings_total",
			Help: "Budget windows whose spend crossed limits.budget.warn_percent (once per window across replicas).",
		}),
		spent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamgate_budget_spent_total",
			Help: "What budgeted requests cost once settled, in the currency of telemetry.prices.",
		}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamgate_budget_settlements_lost_total",
			Help: "Budget settlements never applied: a store call that timed out (it may have run), or more than 8192 waiting for the store to come back.",
		}),
	}
	for _, d := range []string{"exceeded", "store_unavailable", "fail_open"} {
		m.denied.WithLabelValues(d)
	}
	if reg != nil {
		reg.MustRegister(m.denied, m.warnings, m.spent, m.lost)
	}
	return m
}

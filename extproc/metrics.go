package extproc

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamgate/streamgate/extproc/telemetry"
)

// Metrics are the ext_proc server's Prometheus collectors (see package
// telemetry for the list). A nil *Metrics records nothing.
type Metrics struct {
	t *telemetry.Metrics
}

// NewMetrics registers Streamgate's request metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return &Metrics{t: telemetry.NewMetrics(reg)}
}

// Telemetry returns the collectors, for the usage sink; nil for a nil m.
func (m *Metrics) Telemetry() *telemetry.Metrics { return m.tel() }

func (m *Metrics) tel() *telemetry.Metrics {
	if m == nil {
		return nil
	}
	return m.t
}

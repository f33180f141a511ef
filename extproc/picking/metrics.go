package picking

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Scrape error reasons, the reason label of
// streamgate_picking_scrape_errors_total.
const (
	errConnect  = iota // connection refused, reset, DNS, TLS, read failure
	errTimeout         // the scrape outlived picking.timeout
	errStatus          // an HTTP status other than 200
	errTooLarge        // the body passed maxBody
	errParse           // not Prometheus text format
	errMissing         // valid, but none of the dialect's metrics
	numErrReasons
)

var errReasons = [numErrReasons]string{"connect", "timeout", "status", "too_large", "parse", "missing"}

// pickReasons are the reason label values of streamgate_picking_picks_total;
// a Result with any other reason counts as "other".
var pickReasons = [...]string{ReasonScore, ReasonPrefix, ReasonLoRA, ReasonInFlight, ReasonSaturated, "other"}

// pickCounters are one endpoint's pick counters, indexed like pickReasons.
type pickCounters [len(pickReasons)]prometheus.Counter

// reasonIndex is r's index in pickReasons, the last ("other") for an
// unknown reason.
func reasonIndex(r string) int {
	for i, x := range pickReasons[:len(pickReasons)-1] {
		if x == r {
			return i
		}
	}
	return len(pickReasons) - 1
}

// poolMetrics are the pool's counters; the per-endpoint gauges are read
// from the live state by endpointCollector at collection time.
type poolMetrics struct {
	errors *prometheus.CounterVec
	picks  *prometheus.CounterVec
	sheds  *prometheus.CounterVec
}

func newPoolMetrics(p *Pool, reg prometheus.Registerer) *poolMetrics {
	m := &poolMetrics{
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamgate_picking_scrape_errors_total",
			Help: "Failed scrapes of a picking endpoint's metrics, by backend, endpoint and reason (connect, timeout, status, too_large, parse, missing: no metric of the configured dialect). The endpoint keeps its last scrape until it goes stale.",
		}, []string{"backend", "endpoint", "reason"}),
		picks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamgate_picking_picks_total",
			Help: "Requests the endpoint picker sent to an endpoint first, by backend, endpoint and the reason that decided (score, prefix, lora, in_flight: no fresh metrics, saturated, other).",
		}, []string{"backend", "endpoint", "reason"}),
		sheds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamgate_picking_shed_total",
			Help: "Requests refused because every endpoint of a picking backend was saturated, by backend and reason (sheddable: a sheddable request, 429; queue_full: saturation.max_waiting requests already waited, 503; max_wait: no room within saturation.max_wait, 503).",
		}, []string{"backend", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.errors, m.picks, m.sheds, &endpointCollector{p: p})
	}
	return m
}

// forget drops the series of an endpoint no longer configured, so label
// sets stay bounded by the config across reloads.
func (m *poolMetrics) forget(backend, addr string) {
	l := prometheus.Labels{"backend": backend, "endpoint": addr}
	m.errors.DeletePartialMatch(l)
	m.picks.DeletePartialMatch(l)
}

// forgetBackend drops the series of a backend no longer picking.
func (m *poolMetrics) forgetBackend(backend string) {
	m.sheds.DeletePartialMatch(prometheus.Labels{"backend": backend})
}

// shedCounters are the backend's shed counters by reason, created at 0.
func (m *poolMetrics) shedCounters(backend string) (c [numShedReasons]prometheus.Counter) {
	for i, r := range shedReasons {
		c[i] = m.sheds.WithLabelValues(backend, r)
	}
	return c
}

// errorCounters are the endpoint's scrape error counters by reason.
func (m *poolMetrics) errorCounters(backend, addr string) (c [numErrReasons]prometheus.Counter) {
	for i, r := range errReasons {
		c[i] = m.errors.WithLabelValues(backend, addr, r)
	}
	return c
}

// pickCounters are the endpoint's pick counters, created at 0.
func (m *poolMetrics) pickCounters(backend, addr string) *pickCounters {
	var c pickCounters
	for i, r := range pickReasons {
		c[i] = m.picks.WithLabelValues(backend, addr, r)
	}
	return &c
}

var (
	endpointLabels = []string{"backend", "endpoint"}
	descAge        = prometheus.NewDesc("streamgate_picking_scrape_age_seconds",
		"Age of the last successful scrape of a picking endpoint's metrics; past picking.stale_after the picker ignores them and uses in-flight counts. Absent before the first success.", endpointLabels, nil)
	descWaiting = prometheus.NewDesc("streamgate_picking_endpoint_waiting",
		"Requests waiting in the model server's queue, as last scraped.", endpointLabels, nil)
	descRunning = prometheus.NewDesc("streamgate_picking_endpoint_running",
		"Requests in the model server's running batch, as last scraped.", endpointLabels, nil)
	descKVCache = prometheus.NewDesc("streamgate_picking_endpoint_kv_cache_usage",
		"The model server's KV-cache use (0-1), as last scraped.", endpointLabels, nil)
	descInFlight = prometheus.NewDesc("streamgate_picking_endpoint_in_flight",
		"Requests Streamgate picked the endpoint for that have not ended.", endpointLabels, nil)
	descQueued = prometheus.NewDesc("streamgate_picking_waiting",
		"Requests waiting for room on a saturated picking backend, by backend and priority (critical, standard, sheddable).", []string{"backend", "priority"}, nil)
)

// endpointCollector exports every picking endpoint's last scrape and
// in-flight count, read from the pool's live state when Prometheus
// collects: no work per scrape or per request, and endpoints removed by a
// reload disappear with it.
type endpointCollector struct{ p *Pool }

var _ prometheus.Collector = (*endpointCollector)(nil)

// Describe implements prometheus.Collector.
func (c *endpointCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAge, descWaiting, descRunning, descKVCache, descInFlight, descQueued} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *endpointCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.p.now()
	for name, pb := range *c.p.state.Load() {
		for prio, n := range pb.b.Waiting() {
			ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(n), name, Priority(prio).String())
		}
		for _, e := range pb.b.eps {
			ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(e.InFlight()), name, e.Addr)
			m, at, ok := e.Load()
			if !ok {
				continue
			}
			ch <- prometheus.MustNewConstMetric(descAge, prometheus.GaugeValue, max(now.Sub(at).Seconds(), 0), name, e.Addr)
			ch <- prometheus.MustNewConstMetric(descWaiting, prometheus.GaugeValue, m.Waiting, name, e.Addr)
			ch <- prometheus.MustNewConstMetric(descRunning, prometheus.GaugeValue, m.Running, name, e.Addr)
			ch <- prometheus.MustNewConstMetric(descKVCache, prometheus.GaugeValue, m.KVCache, name, e.Addr)
		}
	}
}

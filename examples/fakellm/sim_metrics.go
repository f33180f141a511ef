package fakellm

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// vLLM's metric names (vllm/v1/metrics/loggers.py), as an endpoint picker
// scrapes them.
const (
	MetricNumRequestsWaiting = "vllm:num_requests_waiting"
	MetricNumRequestsRunning = "vllm:num_requests_running"
	MetricKVCacheUsagePerc   = "vllm:kv_cache_usage_perc"
	MetricGPUCacheUsagePerc  = "vllm:gpu_cache_usage_perc" // the older name of kv_cache_usage_perc
	MetricLoRARequestsInfo   = "vllm:lora_requests_info"
	MetricPrefixQueries      = "vllm:prefix_cache_queries_total"
	MetricPrefixHits         = "vllm:prefix_cache_hits_total"
)

// simCollector reports a Sim's state with vLLM's metric names and labels,
// all from one snapshot per scrape.
type simCollector struct {
	sim                                 *Sim
	waiting, running, kvUsage, gpuUsage *prometheus.Desc
	loraInfo, prefixQueries, prefixHits *prometheus.Desc
}

var _ prometheus.Collector = (*simCollector)(nil)

// newSimMetrics returns the /metrics handler of s, in Prometheus text
// format (or what the scraper negotiates).
func newSimMetrics(s *Sim) http.Handler {
	model := []string{"model_name"}
	c := &simCollector{
		sim:      s,
		waiting:  prometheus.NewDesc(MetricNumRequestsWaiting, "Number of requests waiting to be processed.", model, nil),
		running:  prometheus.NewDesc(MetricNumRequestsRunning, "Number of requests in model execution batches.", model, nil),
		kvUsage:  prometheus.NewDesc(MetricKVCacheUsagePerc, "KV-cache usage. 1 means 100 percent usage.", model, nil),
		gpuUsage: prometheus.NewDesc(MetricGPUCacheUsagePerc, "GPU KV-cache usage. 1 means 100 percent usage.", model, nil),
		// vLLM labels this one by adapters only, and sets it to the time
		// of the scrape, so the newest sample wins.
		loraInfo: prometheus.NewDesc(MetricLoRARequestsInfo, "Running stats on lora requests.",
			[]string{"running_lora_adapters", "waiting_lora_adapters", "max_lora"}, nil),
		prefixQueries: prometheus.NewDesc(MetricPrefixQueries, "Prefix cache queries, in terms of number of queried tokens.", model, nil),
		prefixHits:    prometheus.NewDesc(MetricPrefixHits, "Prefix cache hits, in terms of number of cached tokens.", model, nil),
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// Describe sends every metric's description.
func (c *simCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.waiting, c.running, c.kvUsage, c.gpuUsage, c.loraInfo, c.prefixQueries, c.prefixHits} {
		ch <- d
	}
}

// Collect sends the metrics of one State snapshot.
func (c *simCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.sim.State()
	model := c.sim.opts.Model
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, model)
	}
	gauge(c.waiting, float64(st.Waiting))
	gauge(c.running, float64(st.Running))
	gauge(c.kvUsage, st.KVUsage)
	gauge(c.gpuUsage, st.KVUsage)
	ch <- prometheus.MustNewConstMetric(c.prefixQueries, prometheus.CounterValue, float64(st.PrefixQueries), model)
	ch <- prometheus.MustNewConstMetric(c.prefixHits, prometheus.CounterValue, float64(st.PrefixHits), model)
	now := float64(time.Now().UnixNano()) / 1e9
	ch <- prometheus.MustNewConstMetric(c.loraInfo, prometheus.GaugeValue, now,
		strings.Join(st.RunningLoRAs, ","), strings.Join(st.WaitingLoRAs, ","), strconv.Itoa(c.sim.opts.MaxLoRAs))
}

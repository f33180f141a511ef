package picking

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/streamgate/streamgate/config"
)

// dialect is the metric names one kind of model server exports. Each field
// lists alternatives in preference order: the first present in a scrape is
// read. An empty list means the server has no such metric.
//
// Verified against the servers' sources:
//   - vLLM: vllm/v1/metrics/loggers.py (PrometheusStatLogger): gauges
//     vllm:num_requests_waiting, vllm:num_requests_running,
//     vllm:kv_cache_usage_perc (vllm:gpu_cache_usage_perc before 0.9,
//     deprecated since) labelled model_name and engine; and, with LoRA
//     enabled, vllm:lora_requests_info, labelled max_lora,
//     running_lora_adapters and waiting_lora_adapters (comma-separated),
//     whose value is the time it was set (set_to_current_time).
//   - SGLang: python/sglang/srt/metrics/collector.py and
//     docs/references/production_metrics.md: gauges sglang:num_queue_reqs,
//     sglang:num_running_reqs, sglang:token_usage (0-1), labelled
//     model_name (and a dp/tp rank on recent versions).
//   - TGI: docs/source/reference/metrics.md: gauges tgi_queue_size and
//     tgi_batch_current_size; TGI exports no KV-cache use and no adapters.
type dialect struct {
	waiting, running, kvCache []string
	// lora is the vLLM-style adapter info gauge ("" for none).
	lora string
}

var dialects = map[string]dialect{
	config.PickMetricsVLLM: {
		waiting: []string{"vllm:num_requests_waiting"},
		running: []string{"vllm:num_requests_running"},
		kvCache: []string{"vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"},
		lora:    "vllm:lora_requests_info",
	},
	config.PickMetricsSGLang: {
		waiting: []string{"sglang:num_queue_reqs"},
		running: []string{"sglang:num_running_reqs"},
		kvCache: []string{"sglang:token_usage"},
	},
	config.PickMetricsTGI: {
		waiting: []string{"tgi_queue_size"},
		running: []string{"tgi_batch_current_size"},
	},
}

// vLLM's adapter info labels.
const (
	labelRunningLoRA = "running_lora_adapters"
	labelWaitingLoRA = "waiting_lora_adapters"
	labelMaxLoRA     = "max_lora"
	// maxAdapters bounds the adapters read from one label.
	maxAdapters = 256
)

// Parse errors, matched by the scraper to name the error reason.
var (
	// errNoMetrics: the body names none of the dialect's metrics — most
	// likely the wrong dialect or path.
	errNoMetrics = errors.New("no metric of the dialect in the body")
)

// newDialect returns the dialect of cfg.Metrics with cfg.MetricNames
// overriding single names; ok is false for "none" or an unknown dialect
// (config validation refuses the latter).
func newDialect(cfg *config.Picking) (d dialect, ok bool) {
	d, ok = dialects[cfg.Metrics]
	if !ok {
		return dialect{}, false
	}
	override := func(names *[]string, name string) {
		if name != "" {
			*names = []string{name}
		}
	}
	n := cfg.MetricNames
	override(&d.waiting, n.Waiting)
	override(&d.running, n.Running)
	override(&d.kvCache, n.KVCache)
	if n.LoRA != "" {
		d.lora = n.LoRA
	}
	return d, true
}

// names are every metric name d reads.
func (d *dialect) names() []string {
	out := append(append(append([]string(nil), d.waiting...), d.running...), d.kvCache...)
	if d.lora != "" {
		out = append(out, d.lora)
	}
	return out
}

// parser turns a scraped body into Metrics for one dialect. It keeps
// buffers between scrapes, so it is owned by one scraper goroutine.
type parser struct {
	d     dialect
	names []string
	buf   bytes.Buffer
}

func newParser(d dialect) *parser { return &parser{d: d, names: d.names()} }

// parse reads body, a Prometheus text exposition, into Metrics. Only the
// lines of the dialect's metrics reach the Prometheus text parser (a
// vLLM body is mostly histograms the picker never reads; filtering first
// keeps a scrape's cost near one pass over the bytes). Counts are summed
// over the series of a metric (one per model or engine), the KV-cache use
// is the highest of its series, clamped to 0-1. NaN, infinite and negative
// samples are ignored. It fails when the body is not valid text format or
// names none of the dialect's metrics.
func (p *parser) parse(body []byte) (Metrics, error) {
	p.buf.Reset()
	if !filterLines(&p.buf, body, p.names) {
		return Metrics{}, errNoMetrics
	}
	tp := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := tp.TextToMetricFamilies(&p.buf)
	if err != nil {
		return Metrics{}, fmt.Errorf("cannot parse metrics: %w", err)
	}
	return p.d.extract(fams), nil
}

// extract reads d's metrics from parsed families.
func (d *dialect) extract(fams map[string]*dto.MetricFamily) Metrics {
	var m Metrics
	m.Waiting = sum(first(fams, d.waiting))
	m.Running = sum(first(fams, d.running))
	m.KVCache = min(highest(first(fams, d.kvCache)), 1)
	if d.lora != "" {
		readLoRA(&m, fams[d.lora])
	}
	return m
}

// first is the family of the first of names present in fams.
func first(fams map[string]*dto.MetricFamily, names []string) *dto.MetricFamily {
	for _, n := range names {
		if f := fams[n]; f != nil {
			return f
		}
	}
	return nil
}

// value is a gauge, counter or untyped sample's value; ok is false for
// other types and for NaN, infinite or negative values.
func value(m *dto.Metric) (float64, bool) {
	var v float64
	switch {
	case m.Gauge != nil:
		v = m.Gauge.GetValue()
	case m.Counter != nil:
		v = m.Counter.GetValue()
	case m.Untyped != nil:
		v = m.Untyped.GetValue()
	default:
		return 0, false
	}
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0, false
	}
	return v, true
}

// sum adds f's valid samples (0 for none). The sum stays finite: each
// sample is finite and a sum past MaxFloat64 is clamped.
func sum(f *dto.MetricFamily) float64 {
	var s float64
	for _, m := range f.GetMetric() {
		if v, ok := value(m); ok {
			s += v
		}
	}
	if math.IsInf(s, 0) {
		return math.MaxFloat64
	}
	return s
}

// highest is f's highest valid sample (0 for none).
func highest(f *dto.MetricFamily) float64 {
	var h float64
	for _, m := range f.GetMetric() {
		if v, ok := value(m); ok && v > h {
			h = v
		}
	}
	return h
}

// readLoRA reads vLLM's adapter info from f into m: of its series, the
// one set last (the highest value, a Unix time) holds the current state.
func readLoRA(m *Metrics, f *dto.MetricFamily) {
	var latest *dto.Metric
	var at float64
	for _, s := range f.GetMetric() {
		if v, ok := value(s); ok && (latest == nil || v > at) {
			latest, at = s, v
		}
	}
	if latest == nil {
		return
	}
	for _, l := range latest.GetLabel() {
		switch l.GetName() {
		case labelRunningLoRA:
			m.RunningLoRA = adapters(l.GetValue())
		case labelWaitingLoRA:
			m.WaitingLoRA = adapters(l.GetValue())
		case labelMaxLoRA:
			if n, err := strconv.Atoi(strings.TrimSpace(l.GetValue())); err == nil && n > 0 && n <= 1<<20 {
				m.MaxLoRA = n
			}
		}
	}
}

// adapters splits a comma-separated adapter list, dropping empty names and
// keeping at most maxAdapters; nil for none.
func adapters(s string) []string {
	var out []string
	for name := range strings.SplitSeq(s, ",") {
		if name = strings.TrimSpace(name); name != "" && len(out) < maxAdapters {
			out = append(out, name)
		}
	}
	return out
}

// filterLines appends to dst the lines of body that a Prometheus text
// parser needs to read the metrics names: their samples and their HELP and
// TYPE comments, in body order; other metrics and comments are dropped. It
// reports whether any line named one of names (a declared metric with no
// sample yet counts: the server exports it, its value is just unset).
// Names are matched as the text format spells them, bare or quoted.
func filterLines(dst *bytes.Buffer, body []byte, names []string) (seen bool) {
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i+1], body[i+1:]
		} else {
			body = nil
		}
		rest := bytes.TrimLeft(line, " \t")
		if len(rest) > 0 && rest[0] == '#' {
			rest = bytes.TrimLeft(rest[1:], " \t")
			if len(rest) < 5 || (string(rest[:4]) != "HELP" && string(rest[:4]) != "TYPE") || (rest[4] != ' ' && rest[4] != '\t') {
				continue
			}
			rest = bytes.TrimLeft(rest[4:], " \t")
		} else if len(rest) > 0 && rest[0] == '{' {
			rest = rest[1:]
		}
		if !namedIn(rest, names) {
			continue
		}
		seen = true
		dst.Write(line)
		if line[len(line)-1] != '\n' {
			dst.WriteByte('\n')
		}
	}
	return seen
}

// namedIn reports whether s starts with one of names, bare (followed by a
// byte that cannot continue a name) or quoted.
func namedIn(s []byte, names []string) bool {
	for _, n := range names {
		if len(s) > 0 && s[0] == '"' {
			if len(s) > len(n)+1 && string(s[1:1+len(n)]) == n && s[1+len(n)] == '"' {
				return true
			}
			continue
		}
		if len(s) < len(n) || string(s[:len(n)]) != n {
			continue
		}
		if len(s) == len(n) || !nameByte(s[len(n)]) {
			return true
		}
	}
	return false
}

// nameByte reports whether c may continue a bare metric name. The text
// parser ends a name at the first other byte, even with no blank before
// the value ("name+1" is name, value +1), so the filter must too.
func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == ':'
}

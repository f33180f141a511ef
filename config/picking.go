package config

import (
	"fmt"
	"net/netip"
	"time"
)

// Picking makes Streamgate choose the endpoint of a backend for each request
// from the model servers' own load (queue, KV cache, in-flight requests),
// prefix-cache affinity and LoRA adapters, instead of Envoy's LEAST_REQUEST.
// Envoy is told the choice through the override-host load balancing policy;
// LEAST_REQUEST stays its fallback. docs/picking.md describes it.
type Picking struct {
	// Metrics is the model server's metric dialect: vllm (default),
	// sglang, tgi, or none (in-flight counts and affinity only).
	Metrics string `yaml:"metrics"`
	// MetricsPath is scraped on every endpoint (default /metrics).
	MetricsPath string `yaml:"metrics_path"`
	// MetricNames overrides the dialect's metric names, for servers that
	// export other names.
	MetricNames MetricNames `yaml:"metric_names"`
	// Interval between scrapes of one endpoint (default 50ms).
	Interval time.Duration `yaml:"interval"`
	// Timeout of one scrape (default: the interval, at most 1s).
	Timeout time.Duration `yaml:"timeout"`
	// StaleAfter is the age past which an endpoint's metrics are ignored
	// and its in-flight count used instead (default 10 intervals, at
	// least 500ms).
	StaleAfter time.Duration `yaml:"stale_after"`
	// Weights of the scorers; zero turns one off. Defaults
	// (DefaultPickWeights): queue 1, kv_cache 0, in_flight 2, prefix 3,
	// lora 2 — make bench-picking's figures (docs/picking.md).
	Weights *PickWeights `yaml:"weights"`
	// PrefixBlockBytes is the prompt block hashed for prefix affinity
	// (default 256 bytes, about 64 tokens).
	PrefixBlockBytes int `yaml:"prefix_block_bytes"`
	// PrefixBlocks bounds each endpoint's index of recently routed prompt
	// blocks (default 16384).
	PrefixBlocks int `yaml:"prefix_blocks"`
	// Fallbacks is how many next-best endpoints Envoy may retry after the
	// picked one (default 2).
	Fallbacks int `yaml:"fallbacks"`
	// Saturation marks an endpoint full: while every endpoint of the
	// backend is full, requests wait for room in the backend's priority
	// queue and sheddable ones are refused (docs/picking.md "Saturation
	// and priority"). Zero thresholds never saturate.
	Saturation PickSaturation `yaml:"saturation"`
}

// MetricNames are Prometheus metric names read from an endpoint; empty
// fields keep the dialect's names.
type MetricNames struct {
	// Waiting is the gauge of requests queued on the server.
	Waiting string `yaml:"waiting"`
	// Running is the gauge of requests being served.
	Running string `yaml:"running"`
	// KVCache is the gauge of KV-cache use (0-1).
	KVCache string `yaml:"kv_cache"`
	// LoRA is the metric naming the loaded LoRA adapters.
	LoRA string `yaml:"lora"`
}

// DefaultPickWeights are the scorer weights of a picking block without
// weights. Streamgate's own in-flight count weighs twice the scraped queue
// and the KV-cache scorer is off: a scrape is as old as its interval, and
// with the queue weighing more, consecutive picks piled onto the endpoint
// whose last scrape looked emptiest (make bench-picking, uniform workload).
// The scraped signals matter more where several gateway replicas or other
// clients share the servers.
var DefaultPickWeights = PickWeights{Queue: 1, KVCache: 0, InFlight: 2, Prefix: 3, LoRA: 2}

// PickWeights weighs the scorers.
type PickWeights struct {
	// Queue favours endpoints with fewer waiting requests.
	Queue float64 `yaml:"queue"`
	// KVCache favours endpoints with free KV cache.
	KVCache float64 `yaml:"kv_cache"`
	// InFlight favours endpoints with fewer requests in flight from this gateway.
	InFlight float64 `yaml:"in_flight"`
	// Prefix favours the endpoint that recently served the same prompt prefix.
	Prefix float64 `yaml:"prefix"`
	// LoRA favours endpoints with the requested adapter loaded.
	LoRA float64 `yaml:"lora"`
}

// PickSaturation are the thresholds past which an endpoint is full.
type PickSaturation struct {
	// Queue is the waiting requests at which an endpoint is full.
	Queue float64 `yaml:"queue"`
	// KVCache is the KV-cache use (0-1) at which an endpoint is full.
	KVCache float64 `yaml:"kv_cache"`
	// MaxWaiting is how many requests may wait at once for the saturated
	// backend (default 256); more are refused with 503.
	MaxWaiting int `yaml:"max_waiting"`
	// MaxWait is the longest a request waits for room (default 1s); it
	// must stay at least 500ms below extproc.message_timeout, which
	// bounds the wait as Envoy sees it (a request that also waited in
	// limits.queue waits here only for what is left of that bound).
	MaxWait time.Duration `yaml:"max_wait"`
}

// Saturation wait defaults.
const (
	DefaultSaturationMaxWaiting = 256
	DefaultSaturationMaxWait    = time.Second
)

// Metric dialects of Picking.Metrics.
const (
	PickMetricsVLLM   = "vllm"
	PickMetricsSGLang = "sglang"
	PickMetricsTGI    = "tgi"
	PickMetricsNone   = "none"
)

func (p *Picking) applyDefaults() {
	setString(&p.Metrics, PickMetricsVLLM)
	setString(&p.MetricsPath, "/metrics")
	setDuration(&p.Interval, 50*time.Millisecond)
	setDuration(&p.Timeout, min(p.Interval, time.Second))
	setDuration(&p.StaleAfter, max(10*p.Interval, 500*time.Millisecond))
	if p.Weights == nil {
		w := DefaultPickWeights
		p.Weights = &w
	}
	if p.PrefixBlockBytes == 0 {
		p.PrefixBlockBytes = 256
	}
	if p.PrefixBlocks == 0 {
		p.PrefixBlocks = 16384
	}
	if p.Fallbacks == 0 {
		p.Fallbacks = 2
	}
	if p.Saturation.MaxWaiting == 0 {
		p.Saturation.MaxWaiting = DefaultSaturationMaxWaiting
	}
	setDuration(&p.Saturation.MaxWait, DefaultSaturationMaxWait)
}

// validatePicking checks backend b's picking block: a known dialect, sane
// bounds, and IP:port endpoints (Envoy's override-host policy matches the
// picked address against the endpoints' resolved addresses).
func (v *validator) validatePicking(p string, b *Backend) {
	pk := b.Picking
	if pk == nil {
		return
	}
	p += ".picking"
	switch pk.Metrics {
	case PickMetricsVLLM, PickMetricsSGLang, PickMetricsTGI, PickMetricsNone:
	default:
		v.at(p+".metrics", "backend %q: picking.metrics must be vllm, sglang, tgi or none, not %q", b.Name, pk.Metrics)
	}
	if b.Protocol.IsGRPC() {
		v.at(p, "backend %q: picking applies to HTTP backends, not the %s protocol", b.Name, b.Protocol)
	}
	if len(pk.MetricsPath) == 0 || pk.MetricsPath[0] != '/' {
		v.at(p+".metrics_path", "backend %q: picking.metrics_path must start with /", b.Name)
	}
	if pk.Interval < 10*time.Millisecond {
		v.at(p+".interval", "backend %q: picking.interval must be at least 10ms", b.Name)
	}
	if pk.StaleAfter <= pk.Interval {
		v.at(p+".stale_after", "backend %q: picking.stale_after (%v) must be longer than the interval (%v)", b.Name, pk.StaleAfter, pk.Interval)
	}
	w := pk.Weights
	for name, x := range map[string]float64{"queue": w.Queue, "kv_cache": w.KVCache, "in_flight": w.InFlight, "prefix": w.Prefix, "lora": w.LoRA} {
		if x < 0 {
			v.at(p+".weights."+name, "backend %q: picking weight %s must not be negative", b.Name, name)
		}
	}
	if pk.PrefixBlockBytes < 16 || pk.PrefixBlockBytes > 1<<16 {
		v.at(p+".prefix_block_bytes", "backend %q: picking.prefix_block_bytes must be 16-65536", b.Name)
	}
	if pk.PrefixBlocks < 0 || pk.PrefixBlocks > 1<<22 {
		v.at(p+".prefix_blocks", "backend %q: picking.prefix_blocks must be 1-4194304", b.Name)
	}
	if pk.Fallbacks < 0 || pk.Fallbacks > 8 {
		v.at(p+".fallbacks", "backend %q: picking.fallbacks must be 0-8", b.Name)
	}
	if s := pk.Saturation; s.Queue < 0 || s.KVCache < 0 || s.KVCache > 1 {
		v.at(p+".saturation", "backend %q: picking.saturation.queue must be >= 0 and kv_cache 0-1", b.Name)
	}
	v.validateSaturationWait(p+".saturation", b.Name, pk.Saturation)
	for i, e := range b.Endpoints {
		if _, err := netip.ParseAddrPort(e.Address); err != nil {
			v.at(fmt.Sprintf("%s.endpoints[%d]", p[:len(p)-len(".picking")], i), "backend %q: picking needs IP:port endpoints (Envoy matches the picked address), not %q", b.Name, e.Address)
		}
	}
}

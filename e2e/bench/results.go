package bench

import (
	"slices"
	"time"
)

// Latency is a set of percentiles in milliseconds.
type Latency struct {
	P50     float64 `json:"p50_ms"`
	P90     float64 `json:"p90_ms,omitempty"`
	P99     float64 `json:"p99_ms"`
	Samples int     `json:"samples"`
}

// percentiles returns the nearest-rank p50/p90/p99 of d (sorted in place).
func percentiles(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	at := func(q float64) float64 {
		i := int(q*float64(len(d))+0.999999) - 1
		i = min(max(i, 0), len(d)-1)
		return float64(d[i]) / float64(time.Millisecond)
	}
	return Latency{P50: at(0.50), P90: at(0.90), P99: at(0.99), Samples: len(d)}
}

// Result is one configuration measured at one load point.
type Result struct {
	Target        string   `json:"target"`
	Point         Point    `json:"point"`
	Streams       int      `json:"streams"`
	Seconds       float64  `json:"seconds"`
	StreamsPerSec float64  `json:"streams_per_sec"`
	TokensPerSec  float64  `json:"tokens_per_sec"`
	TTFT          Latency  `json:"ttft"`
	ITL           Latency  `json:"itl"`
	Errors        int      `json:"errors"`
	ErrorSamples  []string `json:"error_samples,omitempty"`
	Envoy         *usage   `json:"envoy,omitempty"`
	Streamgate    *usage   `json:"streamgate,omitempty"`
	// RatioToB divides each figure by configuration (b)'s at the same point.
	RatioToB map[string]float64 `json:"ratio_to_b,omitempty"`
	// AddedMs subtracts (b)'s latency percentiles from this one's.
	AddedMs map[string]float64 `json:"added_ms_vs_b,omitempty"`
}

// newResult turns load runs and their process readings (CPU seconds used
// and peak RSS per process of t.pids()) into figures.
func newResult(t *target, p Point, lr *loadResult, cpu []float64, rssMax []int64) *Result {
	secs := lr.seconds
	r := &Result{
		Target: t.ID, Point: p, Streams: lr.completedInWindow, Seconds: secs,
		StreamsPerSec: float64(lr.completedInWindow) / secs,
		TokensPerSec:  float64(lr.tokensInWindow) / secs,
		TTFT:          percentiles(lr.ttft),
		ITL:           percentiles(lr.itl),
		Errors:        lr.errors,
		ErrorSamples:  lr.errorSamples,
	}
	r.ITL.P90 = 0
	for i, pid := range t.pids() {
		u := &usage{CPUSeconds: cpu[i], RSSMaxBytes: rssMax[i]}
		if r.Streams > 0 {
			u.CPUPer1kStreams = u.CPUSeconds / float64(r.Streams) * 1000
		}
		if pid == t.envoyPID {
			r.Envoy = u
		} else {
			r.Streamgate = u
		}
	}
	return r
}

// gatewayCPUPer1k is Envoy's plus streamgate's CPU seconds per 1,000 streams.
func (r *Result) gatewayCPUPer1k() float64 {
	var s float64
	if r.Envoy != nil {
		s += r.Envoy.CPUPer1kStreams
	}
	if r.Streamgate != nil {
		s += r.Streamgate.CPUPer1kStreams
	}
	return s
}

// figures names every ratio-able figure of r.
func (r *Result) figures() map[string]float64 {
	f := map[string]float64{
		"streams_per_sec": r.StreamsPerSec, "tokens_per_sec": r.TokensPerSec,
		"ttft_p50": r.TTFT.P50, "ttft_p90": r.TTFT.P90, "ttft_p99": r.TTFT.P99,
		"itl_p50": r.ITL.P50, "itl_p99": r.ITL.P99,
		"errors": float64(r.Errors), "gateway_cpu_per_1k": r.gatewayCPUPer1k(),
	}
	if r.Envoy != nil {
		f["envoy_cpu_per_1k"] = r.Envoy.CPUPer1kStreams
		f["envoy_rss"] = float64(r.Envoy.RSSMaxBytes)
	}
	if r.Streamgate != nil {
		f["gateway_rss"] = float64(r.Envoy.RSSMaxBytes + r.Streamgate.RSSMaxBytes)
	} else if r.Envoy != nil {
		f["gateway_rss"] = float64(r.Envoy.RSSMaxBytes)
	}
	return f
}

// compareToBaseline fills RatioToB and AddedMs of every result from the
// baseline's result at the same point.
func compareToBaseline(results []*Result, baseline string) {
	base := map[Point]*Result{}
	for _, r := range results {
		if r.Target == baseline {
			base[r.Point] = r
		}
	}
	for _, r := range results {
		b := base[r.Point]
		if b == nil {
			continue
		}
		bf := b.figures()
		r.RatioToB = map[string]float64{}
		for k, v := range r.figures() {
			if bv, ok := bf[k]; ok && bv != 0 {
				r.RatioToB[k] = v / bv
			}
		}
		r.AddedMs = map[string]float64{
			"ttft_p50": r.TTFT.P50 - b.TTFT.P50, "ttft_p90": r.TTFT.P90 - b.TTFT.P90, "ttft_p99": r.TTFT.P99 - b.TTFT.P99,
			"itl_p50": r.ITL.P50 - b.ITL.P50, "itl_p99": r.ITL.P99 - b.ITL.P99,
		}
	}
}

// compareIdle fills RatioToB of the open-stream results.
func compareIdle(idle []*IdleResult, baseline string) {
	var b *IdleResult
	for _, r := range idle {
		if r.Target == baseline {
			b = r
		}
	}
	if b == nil || b.GatewayPerStream == 0 {
		return
	}
	for _, r := range idle {
		r.RatioToB = r.GatewayPerStream / b.GatewayPerStream
	}
}

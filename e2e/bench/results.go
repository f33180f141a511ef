package bench

import (
	"fmt"
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

// Check is one line of the performance budget.
type Check struct {
	What     string  `json:"what"`
	Measured float64 `json:"measured"`
	Limit    float64 `json:"limit"`
	Unit     string  `json:"unit"`
	// Status is "pass", "miss" or "not measured".
	Status string `json:"status"`
}

func (c Check) String() string {
	if c.Status == statusNotMeasured {
		return fmt.Sprintf("%-72s not measured", c.What)
	}
	return fmt.Sprintf("%-72s %9.3f %-5s (limit %g) %s", c.What, c.Measured, c.Unit, c.Limit, c.Status)
}

const (
	statusPass        = "pass"
	statusMiss        = "MISS"
	statusNotMeasured = "not measured"
)

// budget checks the performance budget against the results.
func budget(results []*Result, idle []*IdleResult, promptBytes, largePrompt int) []Check {
	find := func(target string, p Point) *Result {
		for _, r := range results {
			if r.Target == target && r.Point == p && r.AddedMs != nil {
				return r
			}
		}
		return nil
	}
	atMost := func(what string, v float64, ok bool, limit float64, unit string) Check {
		c := Check{What: what, Measured: v, Limit: limit, Unit: unit, Status: statusNotMeasured}
		if ok {
			c.Status = statusPass
			if v > limit {
				c.Status = statusMiss
			}
		}
		return c
	}
	realistic64 := Point{Mode: Realistic, Concurrency: 64, PromptBytes: promptBytes}
	large64 := Point{Mode: Realistic, Concurrency: 64, PromptBytes: largePrompt}
	zero512 := Point{Mode: ZeroDelay, Concurrency: 512, PromptBytes: promptBytes}
	var out []Check
	d := find("d", realistic64)
	out = append(out,
		atMost("(d) added TTFT p50, 1 KiB prompt, c=64 realistic", added(d, "ttft_p50"), d != nil, 1, "ms"),
		atMost("(d) added TTFT p99, 1 KiB prompt, c=64 realistic", added(d, "ttft_p99"), d != nil, 3, "ms"))
	dl := find("d", large64)
	out = append(out, atMost(fmt.Sprintf("(d) added TTFT p50, %s prompt, c=64 realistic", sizeName(largePrompt)), added(dl, "ttft_p50"), dl != nil, 5, "ms"))
	for _, id := range []string{"c", "d"} {
		r := find(id, realistic64)
		out = append(out, atMost(fmt.Sprintf("(%s) added ITL p50, c=64 realistic", id), added(r, "itl_p50")*1000, r != nil, 50, "µs"))
	}
	dz := find("d", zero512)
	c := Check{What: "(d) streams/s ÷ (b) streams/s, c=512 zero-delay", Limit: 0.8, Unit: "×", Status: statusNotMeasured}
	if dz != nil {
		c.Measured = dz.RatioToB["streams_per_sec"]
		c.Status = statusPass
		if c.Measured < 0.8 {
			c.Status = statusMiss
		}
	}
	c.What += " (at least)"
	out = append(out, c)
	for _, r := range idle {
		if r.SGRSSBase == 0 || r.Error != "" {
			continue
		}
		out = append(out, atMost(fmt.Sprintf("(%s) streamgate RSS per open stream (%d held)", r.Target, r.Streams), r.SGPerStream/1024, true, 32, "KiB"))
	}
	return out
}

func added(r *Result, k string) float64 {
	if r == nil {
		return 0
	}
	return r.AddedMs[k]
}

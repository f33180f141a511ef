package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPercentiles(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	l := percentiles(d)
	assert.Equal(t, Latency{P50: 50, P90: 90, P99: 99, Samples: 100}, l)
	assert.Equal(t, Latency{}, percentiles(nil))
	assert.Equal(t, Latency{P50: 2, P90: 2, P99: 2, Samples: 1}, percentiles([]time.Duration{2 * time.Millisecond}))
}

func TestCompareAndBudget(t *testing.T) {
	r64 := Point{Mode: Realistic, Concurrency: 64, PromptBytes: 1024}
	z512 := Point{Mode: ZeroDelay, Concurrency: 512, PromptBytes: 1024}
	mk := func(target string, p Point, sps, ttft50, itl50, sgCPU float64) *Result {
		r := &Result{Target: target, Point: p, StreamsPerSec: sps, TTFT: Latency{P50: ttft50, P99: ttft50 + 10}, ITL: Latency{P50: itl50},
			Envoy: &usage{CPUPer1kStreams: 1, RSSMaxBytes: 100}}
		if sgCPU > 0 {
			r.Streamgate = &usage{CPUPer1kStreams: sgCPU, RSSMaxBytes: 50}
		}
		return r
	}
	results := []*Result{
		mk("b", r64, 100, 150, 20, 0),
		mk("c", r64, 100, 150.4, 20.01, 1),  // gateway CPU 2
		mk("d", r64, 100, 150.8, 20.1, 1.4), // 2.4: 1.2× (c)
		mk("f", r64, 100, 150.6, 20.04, 2),  // 3: 1.5× (c)
		mk("e", r64, 100, 152, 20.02, 3),    // no TTFT or CPU line
		mk("g", r64, 100, 153, 20.06, 4),    // no TTFT or CPU line
		mk("b", z512, 1000, 1, 0, 0),
		mk("c", z512, 650, 1, 0, 0.5), // 0.65× (b)
		mk("d", z512, 610, 1, 0, 0.5), // 0.61×
		mk("f", z512, 550, 1, 0, 0.5), // 0.55×
		mk("d", Point{Mode: Realistic, Concurrency: 64, PromptBytes: 4096}, 100, 190, 20, 1), // large prompt: no line
	}
	compareToBaseline(results, "b")
	assert.InDelta(t, 0.61, results[8].RatioToB["streams_per_sec"], 1e-9)
	assert.InDelta(t, 0.8, results[2].AddedMs["ttft_p50"], 1e-9)
	assert.InDelta(t, 2.4, results[2].RatioToB["gateway_cpu_per_1k"], 1e-9)
	assert.InDelta(t, 1.5, results[2].RatioToB["gateway_rss"], 1e-9)
	assert.Equal(t, 1.0, results[0].RatioToB["streams_per_sec"])
	assert.Nil(t, results[10].RatioToB, "no (b) at the large prompt: nothing to compare with")

	idle := []*IdleResult{
		{Target: "b", Streams: 1000, GatewayPerStream: 10 << 10, EnvoyRSSBase: 1},
		{Target: "c", Streams: 1000, SGRSSBase: 1, SGPerStream: 20 << 10, GatewayPerStream: 30 << 10},
		{Target: "d", Streams: 1000, SGRSSBase: 1, SGPerStream: 40 << 10, GatewayPerStream: 50 << 10},
		{Target: "e", Streams: 1000, SGRSSBase: 1, SGPerStream: 30 << 10, GatewayPerStream: 50 << 10},
		{Target: "f", Streams: 1000, SGRSSBase: 1, SGPerStream: 33 << 10, GatewayPerStream: 50 << 10},
		{Target: "g", Streams: 1000, Error: "streams did not all reach the backend"},
	}
	compareIdle(idle, "b")
	assert.InDelta(t, 3.0, idle[1].RatioToB, 1e-9)

	checks := budget(results, idle, 1024)
	status := map[string]string{}
	for _, c := range checks {
		status[c.What] = c.Status
	}
	assert.Equal(t, map[string]string{
		"(d) gateway CPU per stream (Envoy + streamgate) ÷ (c)'s, 1KiB prompt, c=64 realistic": statusPass, // 1.2×
		"(f) gateway CPU per stream (Envoy + streamgate) ÷ (c)'s, 1KiB prompt, c=64 realistic": statusMiss, // 1.5×
		"(c) added TTFT p50, 1KiB prompt, c=64 realistic":                                      statusPass, // 0.4 ms ≤ 0.5
		"(d) added TTFT p50, 1KiB prompt, c=64 realistic":                                      statusMiss, // 0.8 ms > 0.7
		"(f) added TTFT p50, 1KiB prompt, c=64 realistic":                                      statusPass, // 0.6 ms
		"(c) streams/s ÷ (b)'s, c=512 zero-delay":                                              statusMiss, // 0.65× < 0.7
		"(d) streams/s ÷ (b)'s, c=512 zero-delay":                                              statusPass, // 0.61× ≥ 0.6
		"(f) streams/s ÷ (b)'s, c=512 zero-delay":                                              statusMiss, // 0.55×
		"(c) added ITL p50, c=64 realistic":                                                    statusPass, // 10 µs
		"(d) added ITL p50, c=64 realistic":                                                    statusMiss, // 100 µs
		"(e) added ITL p50, c=64 realistic":                                                    statusPass, // 20 µs
		"(f) added ITL p50, c=64 realistic":                                                    statusPass, // 40 µs
		"(g) added ITL p50, c=64 realistic":                                                    statusMiss, // 60 µs
		"(c) streamgate RSS per open stream":                                                   statusPass, // 20 KiB
		"(d) streamgate RSS per open stream":                                                   statusMiss, // 40 KiB
		"(e) streamgate RSS per open stream":                                                   statusPass, // 30 KiB
		"(f) streamgate RSS per open stream":                                                   statusMiss, // 33 KiB
		"(g) streamgate RSS per open stream":                                                   statusNotMeasured,
	}, status)
	require.Len(t, checks, len(status), "one line per check")
	for _, c := range checks {
		if c.What == "(d) gateway CPU per stream (Envoy + streamgate) ÷ (c)'s, 1KiB prompt, c=64 realistic" {
			assert.InDelta(t, 1.2, c.Measured, 1e-9)
			assert.Equal(t, "≤ 1.25 ×", c.limitText())
		}
		if c.What == "(d) streams/s ÷ (b)'s, c=512 zero-delay" {
			assert.True(t, c.AtLeast)
			assert.Equal(t, "≥ 0.6 ×", c.limitText())
		}
	}

	none := budget(nil, nil, 1024)
	require.Len(t, none, len(status))
	for _, c := range none {
		assert.Equal(t, statusNotMeasured, c.Status, c.What)
	}
}

func TestBudgetWithoutPassThroughLeavesCPULinesUnmeasured(t *testing.T) {
	r64 := Point{Mode: Realistic, Concurrency: 64, PromptBytes: 1024}
	results := []*Result{
		{Target: "b", Point: r64, TTFT: Latency{P50: 150}, Envoy: &usage{CPUPer1kStreams: 1}},
		{Target: "d", Point: r64, TTFT: Latency{P50: 150.5}, Envoy: &usage{CPUPer1kStreams: 2}, Streamgate: &usage{CPUPer1kStreams: 1}},
	}
	compareToBaseline(results, "b")
	for _, c := range budget(results, nil, 1024) {
		switch c.What {
		case "(d) gateway CPU per stream (Envoy + streamgate) ÷ (c)'s, 1KiB prompt, c=64 realistic":
			assert.Equal(t, statusNotMeasured, c.Status, "the ratio needs (c)")
		case "(d) added TTFT p50, 1KiB prompt, c=64 realistic":
			assert.Equal(t, statusPass, c.Status)
		}
	}
}

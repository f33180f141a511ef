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
	large := Point{Mode: Realistic, Concurrency: 64, PromptBytes: 4096}
	z512 := Point{Mode: ZeroDelay, Concurrency: 512, PromptBytes: 1024}
	mk := func(target string, p Point, sps, ttft50, ttft99, itl50 float64) *Result {
		return &Result{Target: target, Point: p, StreamsPerSec: sps, TTFT: Latency{P50: ttft50, P99: ttft99}, ITL: Latency{P50: itl50},
			Envoy: &usage{CPUPer1kStreams: 1, RSSMaxBytes: 100}}
	}
	results := []*Result{
		mk("b", r64, 100, 150, 160, 20),
		mk("c", r64, 100, 150.5, 161, 20.01),
		mk("d", r64, 100, 151.5, 162, 20.1),
		mk("b", large, 100, 150, 160, 20),
		mk("d", large, 100, 154, 170, 20),
		mk("b", z512, 1000, 1, 2, 0),
		mk("d", z512, 700, 1, 2, 0),
	}
	results[2].Streamgate = &usage{CPUPer1kStreams: 3, RSSMaxBytes: 50}
	compareToBaseline(results, "b")
	assert.InDelta(t, 0.7, results[6].RatioToB["streams_per_sec"], 1e-9)
	assert.InDelta(t, 1.5, results[2].AddedMs["ttft_p50"], 1e-9)
	assert.InDelta(t, 4.0, results[2].RatioToB["gateway_cpu_per_1k"], 1e-9)
	assert.InDelta(t, 1.5, results[2].RatioToB["gateway_rss"], 1e-9)
	assert.Equal(t, 1.0, results[0].RatioToB["streams_per_sec"])

	idle := []*IdleResult{
		{Target: "b", Streams: 1000, GatewayPerStream: 10 << 10, EnvoyRSSBase: 1},
		{Target: "c", Streams: 1000, SGRSSBase: 1, SGPerStream: 20 << 10, GatewayPerStream: 30 << 10},
		{Target: "d", Streams: 1000, SGRSSBase: 1, SGPerStream: 40 << 10, GatewayPerStream: 50 << 10},
	}
	compareIdle(idle, "b")
	assert.InDelta(t, 3.0, idle[1].RatioToB, 1e-9)

	checks := budget(results, idle, 1024, 4096)
	status := map[string]string{}
	for _, c := range checks {
		status[c.What] = c.Status
	}
	assert.Equal(t, map[string]string{
		"(d) added TTFT p50, 1 KiB prompt, c=64 realistic":           statusMiss, // 1.5 ms > 1 ms
		"(d) added TTFT p99, 1 KiB prompt, c=64 realistic":           statusPass, // 2 ms
		"(d) added TTFT p50, 4KiB prompt, c=64 realistic":            statusPass, // 4 ms
		"(c) added ITL p50, c=64 realistic":                          statusPass, // 10 µs
		"(d) added ITL p50, c=64 realistic":                          statusMiss, // 100 µs
		"(d) streams/s ÷ (b) streams/s, c=512 zero-delay (at least)": statusMiss, // 0.7
		"(c) streamgate RSS per open stream (1000 held)":             statusPass,
		"(d) streamgate RSS per open stream (1000 held)":             statusMiss,
	}, status)

	none := budget(nil, nil, 1024, 4096)
	require.NotEmpty(t, none)
	for _, c := range none {
		assert.Equal(t, statusNotMeasured, c.Status, c.What)
	}
}

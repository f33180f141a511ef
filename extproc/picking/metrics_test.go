package picking

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

// TestEndpointGaugesAreReadAtCollection pins the per-endpoint gauges: the
// last scrape's values and its age at collection time, the in-flight
// count, and no scrape gauges before the first scrape.
func TestEndpointGaugesAreReadAtCollection(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := newTestPool(t, reg)
	now := time.Unix(1_700_000_000, 0)
	p.now = func() time.Time { return now }
	p.Update(poolConfig(testPicking(config.PickMetricsNone), "10.0.0.1:8000", "10.0.0.2:8000"))
	e := endpoint(t, p, "10.0.0.1:8000")
	e.Store(Metrics{Waiting: 4, Running: 10, KVCache: 0.75}, now.Add(-2500*time.Millisecond))
	e.Start()
	e.Start()
	defer e.Done()
	defer e.Done()

	want := `
# HELP streamgate_picking_endpoint_in_flight Requests Streamgate picked the endpoint for that have not ended.
# TYPE streamgate_picking_endpoint_in_flight gauge
streamgate_picking_endpoint_in_flight{backend="llm",endpoint="10.0.0.1:8000"} 2
streamgate_picking_endpoint_in_flight{backend="llm",endpoint="10.0.0.2:8000"} 0
# HELP streamgate_picking_endpoint_kv_cache_usage The model server's KV-cache use (0-1), as last scraped.
# TYPE streamgate_picking_endpoint_kv_cache_usage gauge
streamgate_picking_endpoint_kv_cache_usage{backend="llm",endpoint="10.0.0.1:8000"} 0.75
# HELP streamgate_picking_endpoint_running Requests in the model server's running batch, as last scraped.
# TYPE streamgate_picking_endpoint_running gauge
streamgate_picking_endpoint_running{backend="llm",endpoint="10.0.0.1:8000"} 10
# HELP streamgate_picking_endpoint_waiting Requests waiting in the model server's queue, as last scraped.
# TYPE streamgate_picking_endpoint_waiting gauge
streamgate_picking_endpoint_waiting{backend="llm",endpoint="10.0.0.1:8000"} 4
# HELP streamgate_picking_scrape_age_seconds Age of the last successful scrape of a picking endpoint's metrics; past picking.stale_after the picker ignores them and uses in-flight counts. Absent before the first success.
# TYPE streamgate_picking_scrape_age_seconds gauge
streamgate_picking_scrape_age_seconds{backend="llm",endpoint="10.0.0.1:8000"} 2.5
`
	names := []string{
		"streamgate_picking_endpoint_in_flight", "streamgate_picking_endpoint_kv_cache_usage", "streamgate_picking_endpoint_running",
		"streamgate_picking_endpoint_waiting", "streamgate_picking_scrape_age_seconds",
	}
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want), names...))

	// The age grows with the clock, with no scrape in between.
	now = now.Add(time.Second)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP streamgate_picking_scrape_age_seconds Age of the last successful scrape of a picking endpoint's metrics; past picking.stale_after the picker ignores them and uses in-flight counts. Absent before the first success.
# TYPE streamgate_picking_scrape_age_seconds gauge
streamgate_picking_scrape_age_seconds{backend="llm",endpoint="10.0.0.1:8000"} 3.5
`), "streamgate_picking_scrape_age_seconds"))

	// A reload dropping the endpoint drops its gauges.
	p.Update(poolConfig(testPicking(config.PickMetricsNone), "10.0.0.2:8000"))
	n, err := testutil.GatherAndCount(reg, names...)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "only 10.0.0.2's in-flight gauge is left")
}

func TestObserveCountsPicksByEndpointAndReason(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := newTestPool(t, reg)
	p.Update(poolConfig(testPicking(config.PickMetricsNone), "10.0.0.1:8000", "10.0.0.2:8000"))
	for _, r := range []Result{
		{Endpoints: []string{"10.0.0.1:8000", "10.0.0.2:8000"}, Reason: ReasonPrefix},
		{Endpoints: []string{"10.0.0.1:8000"}, Reason: ReasonPrefix},
		{Endpoints: []string{"10.0.0.2:8000"}, Reason: ReasonInFlight},
		{Endpoints: []string{"10.0.0.2:8000"}, Reason: "new_reason"},
		{Endpoints: []string{"10.0.0.9:8000"}, Reason: ReasonScore}, // not an endpoint of llm
		{Reason: ReasonSaturated}, // no endpoint
	} {
		p.Observe("llm", &r)
	}
	p.Observe("other", &Result{Endpoints: []string{"10.0.0.1:8000"}, Reason: ReasonScore})

	picks := func(addr, reason string) float64 {
		return testutil.ToFloat64(p.metrics.picks.WithLabelValues("llm", addr, reason))
	}
	assert.InDelta(t, 2, picks("10.0.0.1:8000", ReasonPrefix), 0)
	assert.InDelta(t, 1, picks("10.0.0.2:8000", ReasonInFlight), 0)
	assert.InDelta(t, 1, picks("10.0.0.2:8000", "other"), 0)
	assert.InDelta(t, 0, picks("10.0.0.1:8000", ReasonScore), 0)

	// Kept endpoints keep their counts across a reload; dropped ones lose
	// their series (pick and scrape error counters alike).
	p.Update(poolConfig(testPicking(config.PickMetricsNone), "10.0.0.2:8000", "10.0.0.3:8000"))
	assert.InDelta(t, 1, picks("10.0.0.2:8000", ReasonInFlight), 0)
	var out bytes.Buffer
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == "10.0.0.1:8000" {
					out.WriteString(mf.GetName() + " ")
				}
			}
		}
	}
	assert.Empty(t, out.String(), "series of the dropped endpoint")
	n, err := testutil.GatherAndCount(reg, "streamgate_picking_picks_total", "streamgate_picking_scrape_errors_total")
	require.NoError(t, err)
	assert.Equal(t, 2*len(pickReasons), n, "picks pre-created per endpoint and reason, no errors without scraping")
}

// BenchmarkObserve is the per-request cost of counting a pick.
func BenchmarkObserve(b *testing.B) {
	p := NewPool(prometheus.NewRegistry(), nil)
	defer p.Close()
	addrs := make([]string, 64)
	for i := range addrs {
		addrs[i] = "10.0.0." + string(rune('0'+i/10)) + string(rune('0'+i%10)) + ":8000"
	}
	p.Update(poolConfig(testPicking(config.PickMetricsNone), addrs...))
	r := Result{Endpoints: []string{addrs[40], addrs[3]}, Reason: ReasonPrefix}
	b.ReportAllocs()
	for b.Loop() {
		p.Observe("llm", &r)
	}
}

// BenchmarkParse is one scrape's parse of a vLLM body, through the line
// filter (parse) and, for comparison, the whole body through the text
// parser.
func BenchmarkParse(b *testing.B) {
	body := readTestdata(b, "vllm_lora.txt")
	d := mustDialect(b, config.Picking{Metrics: config.PickMetricsVLLM})
	b.Run("filtered", func(b *testing.B) {
		p := newParser(d)
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.parse(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("full", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := parseUnfiltered(d, body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

package fakellm_test

import (
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakellm"
)

// scrape fetches url's /metrics and parses it with Prometheus' text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + fakellm.MetricsPath)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return families
}

// labels returns m's labels as a map.
func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestSimMetricsParseWithVLLMNamesAndLabels(t *testing.T) {
	_, url := startSim(t, fakellm.SimOptions{Speed: 100, Model: "llama-8b", LoRAs: []string{"sql"}})
	prompt := longPrompt("metrics", 4096)
	mustChat(t, url, "llama-8b", prompt, 1)
	mustChat(t, url, "llama-8b", prompt, 1)

	families := scrape(t, url)
	for name, typ := range map[string]dto.MetricType{
		fakellm.MetricNumRequestsWaiting: dto.MetricType_GAUGE,
		fakellm.MetricNumRequestsRunning: dto.MetricType_GAUGE,
		fakellm.MetricKVCacheUsagePerc:   dto.MetricType_GAUGE,
		fakellm.MetricGPUCacheUsagePerc:  dto.MetricType_GAUGE,
		fakellm.MetricLoRARequestsInfo:   dto.MetricType_GAUGE,
		fakellm.MetricPrefixQueries:      dto.MetricType_COUNTER,
		fakellm.MetricPrefixHits:         dto.MetricType_COUNTER,
	} {
		f, ok := families[name]
		if !assert.True(t, ok, "%s missing", name) {
			continue
		}
		assert.Equal(t, typ, f.GetType(), name)
		require.Len(t, f.GetMetric(), 1, name)
		if name != fakellm.MetricLoRARequestsInfo {
			assert.Equal(t, map[string]string{"model_name": "llama-8b"}, labels(f.GetMetric()[0]), name)
		}
	}
	queries := families[fakellm.MetricPrefixQueries].GetMetric()[0].GetCounter().GetValue()
	hits := families[fakellm.MetricPrefixHits].GetMetric()[0].GetCounter().GetValue()
	assert.Equal(t, 2.0*1028, queries, `two prompts of len("system\n" + 4096 bytes + "\nuser\nhi\n") / 4 tokens`)
	assert.Equal(t, 1024.0, hits, "the second prompt's 64 full blocks")
	assert.Equal(t, map[string]string{"running_lora_adapters": "", "waiting_lora_adapters": "", "max_lora": "2"},
		labels(families[fakellm.MetricLoRARequestsInfo].GetMetric()[0]))
	assert.Zero(t, families[fakellm.MetricKVCacheUsagePerc].GetMetric()[0].GetGauge().GetValue(), "idle: no block held")
}

func TestSimMetricsReportKVUsageOfRunningRequests(t *testing.T) {
	s, url := startSim(t, fakellm.SimOptions{KVBlocks: 1000})
	ctx := t.Context()
	done := make(chan struct{})
	go func() { defer close(done); _, _ = simChat(ctx, url, "m", longPrompt("kv", 4000), 100000) }()
	eventually(t, "running", func() bool { return s.State().Running == 1 })
	families := scrape(t, url)
	kv := families[fakellm.MetricKVCacheUsagePerc].GetMetric()[0].GetGauge().GetValue()
	gpu := families[fakellm.MetricGPUCacheUsagePerc].GetMetric()[0].GetGauge().GetValue()
	// len("system\n" + 4000 bytes + "\nuser\nhi\n") / 4 = 1004 tokens: 62 full
	// blocks and 1 partial, a few more for the output so far.
	assert.GreaterOrEqual(t, kv, 0.063)
	assert.Less(t, kv, 0.2)
	assert.Equal(t, kv, gpu, "the older name carries the same value")
}

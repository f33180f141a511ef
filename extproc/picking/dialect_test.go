package picking

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

func mustDialect(t testing.TB, c config.Picking) dialect {
	t.Helper()
	d, ok := newDialect(&c)
	require.True(t, ok, "dialect %q", c.Metrics)
	return d
}

func TestParseReadsEachDialectsMetrics(t *testing.T) {
	vllm := config.Picking{Metrics: config.PickMetricsVLLM}
	tests := map[string]struct {
		cfg     config.Picking
		body    string // inline body, or
		file    string // a testdata file
		want    Metrics
		wantErr error
	}{
		"vllm with the current KV name": {cfg: vllm, file: "vllm.txt", want: Metrics{Waiting: 3, Running: 12, KVCache: 0.4215}},
		"vllm exporting both KV names prefers the current one": {
			cfg: vllm, file: "vllm_both_kv.txt", want: Metrics{Waiting: 3, Running: 12, KVCache: 0.4215},
		},
		"vllm before 0.9 exports only gpu_cache_usage_perc": {
			cfg: vllm, file: "vllm_old_kv.txt", want: Metrics{Waiting: 3, Running: 12, KVCache: 0.25},
		},
		"vllm LoRA info takes the series set last": {
			cfg: vllm, file: "vllm_lora.txt",
			want: Metrics{Waiting: 3, Running: 12, KVCache: 0.4215, RunningLoRA: []string{"sql-lora"}, WaitingLoRA: []string{"chat-lora"}, MaxLoRA: 4},
		},
		"vllm data-parallel engines: counts summed, KV use the highest": {
			cfg: vllm,
			body: `vllm:num_requests_waiting{engine="0",model_name="m"} 2
vllm:num_requests_waiting{engine="1",model_name="m"} 5
vllm:num_requests_running{engine="0",model_name="m"} 8
vllm:num_requests_running{engine="1",model_name="m"} 9
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.3
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.7
`,
			want: Metrics{Waiting: 7, Running: 17, KVCache: 0.7},
		},
		"sglang":               {cfg: config.Picking{Metrics: config.PickMetricsSGLang}, file: "sglang.txt", want: Metrics{Waiting: 7, Running: 24, KVCache: 0.28}},
		"tgi has no KV metric": {cfg: config.Picking{Metrics: config.PickMetricsTGI}, file: "tgi.txt", want: Metrics{Waiting: 5, Running: 16}},
		"override names replace the dialect's": {
			cfg: config.Picking{Metrics: config.PickMetricsVLLM, MetricNames: config.MetricNames{Waiting: "llamacpp:requests_deferred", KVCache: "llamacpp:kv_cache_usage_ratio", LoRA: "my:lora_info"}},
			body: `# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 4
vllm:num_requests_waiting 100
vllm:num_requests_running 2
llamacpp:kv_cache_usage_ratio 0.5
vllm:kv_cache_usage_perc 0.9
my:lora_info{running_lora_adapters="a,b",waiting_lora_adapters="c",max_lora="8"} 17
`,
			want: Metrics{Waiting: 4, Running: 2, KVCache: 0.5, RunningLoRA: []string{"a", "b"}, WaitingLoRA: []string{"c"}, MaxLoRA: 8},
		},
		"NaN, infinite and negative samples are absent": {
			cfg: vllm,
			body: `vllm:num_requests_waiting{engine="0"} NaN
vllm:num_requests_waiting{engine="1"} 3
vllm:num_requests_running -4
vllm:kv_cache_usage_perc +Inf
`,
			want: Metrics{Waiting: 3},
		},
		"KV use over 1 is clamped": {cfg: vllm, body: "vllm:kv_cache_usage_perc 7\n", want: Metrics{KVCache: 1}},
		"declared metrics without samples yet read as idle": {
			cfg:  config.Picking{Metrics: config.PickMetricsSGLang},
			body: "# HELP sglang:num_queue_reqs The number of requests in the waiting queue.\n# TYPE sglang:num_queue_reqs gauge\n",
			want: Metrics{},
		},
		"quoted metric names": {
			cfg:  vllm,
			body: "# TYPE \"vllm:num_requests_waiting\" gauge\n{\"vllm:num_requests_waiting\",model_name=\"m\"} 6\n",
			want: Metrics{Waiting: 6},
		},
		"garbage in other metrics is ignored": {
			cfg:  vllm,
			body: "this is { not a metric\nvllm:num_requests_running 3\n# TYPE x nonsense\n",
			want: Metrics{Running: 3},
		},
		"bad LoRA labels are dropped": {
			cfg:  vllm,
			body: `vllm:lora_requests_info{running_lora_adapters=" , a ,,",waiting_lora_adapters="",max_lora="-3"} 5` + "\n",
			want: Metrics{RunningLoRA: []string{"a"}},
		},
		"the wrong dialect finds nothing": {cfg: vllm, file: "tgi.txt", wantErr: errNoMetrics},
		"empty body":                      {cfg: vllm, body: "", wantErr: errNoMetrics},
		"invalid sample of a read metric": {cfg: vllm, body: "vllm:num_requests_waiting{model_name=\"m\" 3\n", wantErr: errWantParse},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			body := []byte(tc.body)
			if tc.file != "" {
				body = readTestdata(t, tc.file)
			}
			got, err := newParser(mustDialect(t, tc.cfg)).parse(body)
			if tc.wantErr == errWantParse {
				require.Error(t, err)
				assert.NotErrorIs(t, err, errNoMetrics)
				return
			}
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// errWantParse marks test cases expecting a text-format error.
var errWantParse = errors.New("want a parse error")

func TestNewDialectNoneAndUnknownDoNotScrape(t *testing.T) {
	for _, m := range []string{config.PickMetricsNone, "bogus"} {
		_, ok := newDialect(&config.Picking{Metrics: m})
		assert.False(t, ok, m)
	}
}

// TestFilterLinesKeepsWhatTheFullParseReads pins the pre-filter: on the
// real-looking bodies, reading through it gives exactly what parsing the
// whole body gives.
func TestFilterLinesKeepsWhatTheFullParseReads(t *testing.T) {
	for _, tc := range []struct{ dialect, file string }{
		{config.PickMetricsVLLM, "vllm.txt"}, {config.PickMetricsVLLM, "vllm_both_kv.txt"},
		{config.PickMetricsVLLM, "vllm_old_kv.txt"}, {config.PickMetricsVLLM, "vllm_lora.txt"},
		{config.PickMetricsSGLang, "sglang.txt"}, {config.PickMetricsTGI, "tgi.txt"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			d := mustDialect(t, config.Picking{Metrics: tc.dialect})
			body := readTestdata(t, tc.file)
			filtered, err := newParser(d).parse(body)
			require.NoError(t, err)
			full, err := parseUnfiltered(d, body)
			require.NoError(t, err)
			assert.Equal(t, full, filtered)
			var kept bytes.Buffer
			filterLines(&kept, body, d.names())
			assert.Less(t, kept.Len(), len(body)/4, "the filter drops the metrics not read")
		})
	}
}

// parseUnfiltered is parse without the line filter: the whole body through
// the Prometheus text parser.
func parseUnfiltered(d dialect, body []byte) (Metrics, error) {
	tp := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := tp.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return Metrics{}, err
	}
	return d.extract(fams), nil
}

var fuzzDialects = []config.Picking{
	{Metrics: config.PickMetricsVLLM},
	{Metrics: config.PickMetricsSGLang},
	{Metrics: config.PickMetricsTGI},
	{Metrics: config.PickMetricsVLLM, MetricNames: config.MetricNames{Waiting: "q", Running: "r", KVCache: "kv", LoRA: "l"}},
}

// FuzzParseMetrics feeds arbitrary bytes to every dialect's parser: it
// never panics, and a success holds only finite, non-negative values, KV
// use within 0-1 and bounded adapter lists. Where the whole body parses,
// the filtered parse agrees with it.
func FuzzParseMetrics(f *testing.F) {
	for _, name := range []string{"vllm.txt", "vllm_lora.txt", "vllm_old_kv.txt", "sglang.txt", "tgi.txt"} {
		f.Add(readTestdata(f, name))
	}
	f.Add([]byte("vllm:num_requests_waiting NaN\nvllm:kv_cache_usage_perc 1e308\nvllm:kv_cache_usage_perc 1e308\n"))
	f.Add([]byte("# TYPE vllm:num_requests_waiting histogram\nvllm:num_requests_waiting_bucket{le=\"1\"} 2\n"))
	f.Add([]byte("{\"q\",a=\"b\"} 3\nr 1e308\nr 1e308\nl{max_lora=\"99999999999\",running_lora_adapters=\"a,b\"} 1\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, c := range fuzzDialects {
			d := mustDialect(t, c)
			m, err := newParser(d).parse(body)
			if err != nil {
				continue
			}
			for _, v := range []float64{m.Waiting, m.Running, m.KVCache} {
				if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
					t.Fatalf("%s: insane value in %+v", c.Metrics, m)
				}
			}
			if m.KVCache > 1 || m.MaxLoRA < 0 || len(m.RunningLoRA) > maxAdapters || len(m.WaitingLoRA) > maxAdapters {
				t.Fatalf("%s: out of bounds: %+v", c.Metrics, m)
			}
			if full, err := parseUnfiltered(d, body); err == nil && !sameMetrics(full, m) {
				t.Fatalf("%s: filtered %+v, full %+v", c.Metrics, m, full)
			}
		}
	})
}

func sameMetrics(a, b Metrics) bool {
	return a.Waiting == b.Waiting && a.Running == b.Running && a.KVCache == b.KVCache && a.MaxLoRA == b.MaxLoRA &&
		slices.Equal(a.RunningLoRA, b.RunningLoRA) && slices.Equal(a.WaitingLoRA, b.WaitingLoRA)
}

package pickbench

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/streamgate/streamgate/config"
)

func TestQuantileIsNearestRank(t *testing.T) {
	d := make([]time.Duration, 100)
	for i := range d {
		d[i] = time.Duration(i+1) * time.Millisecond
	}
	for name, tc := range map[string]struct {
		q    float64
		want float64
	}{"p50": {0.5, 50}, "p90": {0.9, 90}, "p99": {0.99, 99}, "max": {1, 100}} {
		if got := quantileMs(d, tc.q); got != tc.want {
			t.Errorf("%s = %v, want %v", name, got, tc.want)
		}
	}
	if quantileMs(nil, 0.9) != 0 {
		t.Error("quantile of nothing is not 0")
	}
}

func phases(lrP90, pkP90, lrTok, pkTok float64) []PhaseResult {
	return []PhaseResult{
		{Workload: "shared-prefix", Arm: "least-request", TTFTp90: lrP90, TokensPerS: lrTok, HitRate: 0.4, Completed: 1},
		{Workload: "shared-prefix", Arm: "picking", TTFTp90: pkP90, TokensPerS: pkTok, HitRate: 0.9, Completed: 1},
		{Workload: "uniform", Arm: "least-request", TTFTp90: 100, TokensPerS: 1000, HitRate: 0, Completed: 1},
		{Workload: "uniform", Arm: "picking", TTFTp90: 105, TokensPerS: 990, HitRate: 0, Completed: 1},
	}
}

func TestTargetChecks(t *testing.T) {
	for name, tc := range map[string]struct {
		ps   []PhaseResult
		pass []bool
	}{
		"met":                     {phases(100, 60, 1000, 1000), []bool{true, true, true, true}},
		"TTFT cut only 20 %":      {phases(100, 80, 1000, 1000), []bool{false, true, true, true}},
		"throughput 10 % lower":   {phases(100, 60, 1000, 900), []bool{true, false, true, true}},
		"throughput within noise": {phases(100, 60, 1000, 960), []bool{true, true, true, true}},
	} {
		t.Run(name, func(t *testing.T) {
			cs := targetChecks(tc.ps, "shared-prefix", "uniform")
			if len(cs) != len(tc.pass) {
				t.Fatalf("%d checks, want %d", len(cs), len(tc.pass))
			}
			for i, c := range cs {
				if c.Pass != tc.pass[i] {
					t.Errorf("%s: pass = %v (measured %.2f, limit %.2f), want %v", c.What, c.Pass, c.Measured, c.Limit, tc.pass[i])
				}
			}
		})
	}
	ps := phases(100, 100, 1000, 1000)
	ps[3].TTFTp90 = 120
	if cs := targetChecks(ps, "shared-prefix", "uniform"); cs[2].Pass {
		t.Error("uniform TTFT p90 20 % worse passes")
	}
}

func shortReport(ps []PhaseResult) *Report {
	return &Report{Short: true, Phases: ps, Settings: Settings{Workloads: []Workload{{Name: "shared-prefix"}, {Name: "uniform"}}}}
}

func TestShortRunFailures(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func([]PhaseResult)
		want string // "" passes
	}{
		"clean":                      {func([]PhaseResult) {}, ""},
		"errors":                     {func(p []PhaseResult) { p[2].Errors, p[2].ErrorSamples = 3, []string{"status 500"} }, "3 errors"},
		"no traffic":                 {func(p []PhaseResult) { p[1].Completed = 0 }, "no traffic"},
		"hit rate not computed":      {func(p []PhaseResult) { p[3].HitRate = -1 }, "not computed"},
		"picking hit rate not above": {func(p []PhaseResult) { p[1].HitRate = 0.4 }, "not above"},
		"shed is not an error":       {func(p []PhaseResult) { p[0].Shed = 5 }, ""},
		"unfinished is not an error": {func(p []PhaseResult) { p[0].Unfinished = 5 }, ""},
	} {
		t.Run(name, func(t *testing.T) {
			ps := phases(100, 60, 1000, 1000)
			for i := range ps {
				ps[i].TokensPerS = 1
			}
			tc.edit(ps)
			err := shortReport(ps).failures()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("failures() = %v, want none", err)
			case tc.want != "" && (err == nil || !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("failures() = %v, want ErrFailed mentioning %q", err, tc.want)
			}
		})
	}
}

func TestFullRunFailsOnErrorsOnly(t *testing.T) {
	ps := phases(100, 200, 1000, 500) // targets missed
	ps[1].HitRate = 0.1
	r := shortReport(ps)
	r.Short = false
	if err := r.failures(); err != nil {
		t.Fatalf("a full run that missed its targets fails: %v", err)
	}
	ps[0].Errors = 1
	if err := r.failures(); err == nil {
		t.Fatal("a full run with an error does not fail")
	}
}

func TestMergePage(t *testing.T) {
	gen := []byte("| table |\n")
	t.Run("page without markers gets a Benchmark section", func(t *testing.T) {
		out := string(mergePage([]byte("# Picking\n\ntext\n"), gen))
		want := "# Picking\n\ntext\n\n## Benchmark\n\n" + markBegin + "\n| table |\n" + markEnd + "\n"
		if out != want {
			t.Fatalf("got\n%s\nwant\n%s", out, want)
		}
	})
	t.Run("markers are rewritten, the rest kept", func(t *testing.T) {
		page := "# Picking\n\n## Benchmark\n\nintro\n" + markBegin + "\nold\n" + markEnd + "\nafter\n"
		out := string(mergePage([]byte(page), gen))
		want := "# Picking\n\n## Benchmark\n\nintro\n" + markBegin + "\n| table |\n" + markEnd + "\nafter\n"
		if out != want {
			t.Fatalf("got\n%s\nwant\n%s", out, want)
		}
	})
	t.Run("no page", func(t *testing.T) {
		if out := string(mergePage(nil, gen)); !strings.HasPrefix(out, "## Benchmark\n\n"+markBegin) {
			t.Fatalf("got %q", out)
		}
	})
}

func TestParsePrefixSumsCounters(t *testing.T) {
	text := `# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{model_name="m"} 1000
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{model_name="m"} 250
vllm:prefix_cache_hits_total{model_name="lora"} 50
`
	c, err := parsePrefix(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if c.Queries != 1000 || c.Hits != 300 {
		t.Fatalf("counters = %+v, want 1000 queries and 300 hits", c)
	}
	if _, err := parsePrefix(strings.NewReader("vllm:num_requests_waiting 1\n")); err == nil {
		t.Fatal("metrics without the prefix counters parse")
	}
	if _, err := parsePrefix(strings.NewReader("garbage{\n")); err == nil {
		t.Fatal("garbage parses")
	}
}

func TestGeneratedConfigsLoad(t *testing.T) {
	ports := []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4", "127.0.0.1:5"}
	eps := []string{"127.0.0.1:8001", "127.0.0.1:8002"}
	for _, arm := range []Arm{{Name: "least-request"}, {Name: "picking", Picking: DefaultPicking}} {
		t.Run(arm.Name, func(t *testing.T) {
			cfg, err := config.Parse(arm.Name+".yaml", []byte(gatewayConfig(ports, eps, arm, benchModel)))
			if err != nil {
				t.Fatal(err)
			}
			b := cfg.Backends[0]
			if len(b.Endpoints) != 2 || (b.Picking != nil) != (arm.Picking != "") {
				t.Fatalf("backend = %d endpoints, picking %v; want 2 and picking only on the picking arm", len(b.Endpoints), b.Picking != nil)
			}
		})
	}
}

func TestMarkdownShowsEveryPhaseAndCheck(t *testing.T) {
	ps := phases(100, 60, 1000, 1000)
	ps[0].Servers = map[string]int{"gpu-2": 5, "gpu-1": 7}
	r := &Report{Phases: ps, Checks: targetChecks(ps, "shared-prefix", "uniform"), Settings: Settings{
		Sims:      SimSpec{Servers: 4, SlowFactor: 1.5, KVBlocks: 512, MaxNumSeqs: 8, Speed: 4},
		Workloads: []Workload{{Name: "shared-prefix", SystemPrompts: 8}, {Name: "uniform"}},
		Arms:      []Arm{{Name: "least-request"}, {Name: "picking", Picking: DefaultPicking}},
	}}
	md := string(r.Markdown())
	for _, want := range []string{
		"| shared-prefix | least-request | 0 | 100 | 0 | 1000 | 40.0% |",
		"| uniform | picking | 0 | 105 | 0 | 990 | 0.0% |",
		"| 7/5 |",
		"| shared-prefix: TTFT p90 reduction (picking vs least-request) | 0.40 | 0.30 | PASS |",
		"`picking: " + DefaultPicking + "`",
		"-sim-kv-blocks 512",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

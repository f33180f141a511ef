package bench

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestMergeMarkdown(t *testing.T) {
	gen := []byte("# Performance\ntable\n")
	fresh := mergeMarkdown(nil, gen)
	assert.Equal(t, markBegin+"\n# Performance\ntable\n"+markEnd+"\n", string(fresh))

	page := []byte("intro\n" + string(fresh) + "\n## Findings\nkept\n")
	out := mergeMarkdown(page, []byte("# Performance\nnew table\n"))
	assert.Equal(t, "intro\n"+markBegin+"\n# Performance\nnew table\n"+markEnd+"\n\n## Findings\nkept\n", string(out))
}

func TestMarkdownDescribesEveryConfigurationAndTheBudget(t *testing.T) {
	o := Options{StreamgateBin: "bin/streamgate", FullBin: "bin/streamgate", Configs: []string{"b", "c", "d", "f"}}
	rep := &Report{
		Settings: Settings{Tokens: 16, PromptBytes: 1 << 10, LargePromptBytes: 256 << 10, Rounds: 2, DurationSeconds: 4, WarmupSeconds: 1, IdleStreams: 1000},
		Targets:  configurations(o, fullConfig, "e2e/bench/configs/full.yaml", &backend{addr: "127.0.0.1:1"}),
		Budget: []Check{
			newCheck("(d) added TTFT p50", 0.8, true, 0.7, false, "ms"),
			newCheck("(f) streams/s ÷ (b)'s", 0.65, true, 0.6, true, "×"),
			newCheck("(g) streamgate RSS per open stream", 0, false, 32, false, "KiB"),
		},
	}
	page := string(rep.Markdown())
	for _, want := range []string{
		"- **(a) backend directly**: clients ask for usage (stream_options.include_usage) — *skipped: not selected (-configs)*",
		"- **(d) Envoy + Streamgate, all features**: " + configLabel(fullConfig) + "; clients ask for usage (stream_options.include_usage) (config `e2e/bench/configs/full.yaml`)",
		"- **(f) Envoy + Streamgate, all features, clients not asking for usage**: " + configLabel(fullConfig) + "; clients do not ask for usage (the official SDKs' default) (config `e2e/bench/configs/full.yaml`)",
		"- **(g) Envoy + Streamgate, everything on**: " + configLabel(everythingConfig) + "; clients do not ask for usage (the official SDKs' default) (config `e2e/bench/configs/everything.yaml`) — *skipped: not selected (-configs)*",
		"interleaved\n  b, c, d, f, b, c, ..., each time",
		"| (d) added TTFT p50 | 0.800 ms | ≤ 0.7 ms | MISS |",
		"| (f) streams/s ÷ (b)'s | 0.650 × | ≥ 0.6 × | pass |",
		"| (g) streamgate RSS per open stream | – | ≤ 32 KiB | not measured |",
	} {
		assert.Contains(t, page, want)
	}
	flat := strings.Join(strings.Fields(page), " ")
	assert.Contains(t, flat, "- **Usage**: the clients of (a), (b), (c), (d), (e) ask for usage (`stream_options.include_usage`); those of (f), (g) do not, as the official SDKs by default")
	_, usage, _ := strings.Cut(page, "- **Usage**")
	usage, _, _ = strings.Cut(usage, "\n- ")
	for _, line := range strings.Split(usage, "\n") {
		assert.LessOrEqual(t, len([]rune(line)), 80, "the usage bullet is wrapped: %q", line)
	}
	for _, id := range allConfigs {
		assert.Contains(t, page, "- **("+id+") ", "configuration (%s) is listed", id)
	}
}

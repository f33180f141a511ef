package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/procfs"
)

// Machine describes where a run happened.
type Machine struct {
	CPU        string `json:"cpu"`
	Cores      int    `json:"cores"`
	MemoryMiB  uint64 `json:"memory_mib"`
	Kernel     string `json:"kernel"`
	Go         string `json:"go"`
	Envoy      string `json:"envoy"`
	LoadAvg    string `json:"load_average_start"`
	LoadAvgEnd string `json:"load_average_end"`
}

// describeMachine reads the CPU from /proc/cpuinfo and the rest from /proc
// and the Envoy binary.
func describeMachine(ctx context.Context, envoyBin string) Machine {
	m := Machine{Go: runtime.Version(), LoadAvg: loadAvg()}
	if fs, err := procfs.NewDefaultFS(); err == nil {
		if cpus, err := fs.CPUInfo(); err == nil && len(cpus) > 0 {
			m.CPU, m.Cores = cpus[0].ModelName, len(cpus)
		}
		if mi, err := fs.Meminfo(); err == nil && mi.MemTotal != nil {
			m.MemoryMiB = *mi.MemTotal / 1024
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(vctx, envoyBin, "--version").Output(); err == nil {
		m.Envoy = envoyVersion(string(out))
	}
	return m
}

// envoyVersion picks "1.40.0/..." out of `envoy --version`.
func envoyVersion(out string) string {
	_, v, ok := strings.Cut(out, "version: ")
	if !ok {
		return strings.TrimSpace(out)
	}
	v, _, _ = strings.Cut(v, "\n")
	if hash, rest, ok := strings.Cut(v, "/"); ok && len(hash) == 40 {
		v = rest
	}
	return strings.TrimSpace(v)
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// Markers around the part of the performance page a run rewrites; text
// outside them (findings, history) is kept.
const (
	markBegin = "<!-- bench:begin (written by make bench; edit outside these markers) -->"
	markEnd   = "<!-- bench:end -->"
)

// mergeMarkdown puts generated between the markers of page, or returns
// generated alone (with the markers) when page has none.
func mergeMarkdown(page, generated []byte) []byte {
	return mergeBetween(page, generated, markBegin, markEnd)
}

// mergeBetween puts generated between the begin and end markers of page, or
// returns generated alone (with the markers) when page has none.
func mergeBetween(page, generated []byte, begin, end string) []byte {
	block := append(append([]byte(begin+"\n"), generated...), []byte(end+"\n")...)
	i := bytes.Index(page, []byte(begin))
	j := bytes.Index(page, []byte(end))
	if i < 0 || j < i {
		return block
	}
	out := append([]byte(nil), page[:i]...)
	out = append(out, block...)
	rest := page[j+len(end):]
	return append(out, bytes.TrimPrefix(rest, []byte("\n"))...)
}

// Markdown renders the generated part of docs/performance.md.
func (rep *Report) Markdown() []byte {
	var w bytes.Buffer
	fmt.Fprint(&w, `# Performance

What Streamgate adds to a token stream, measured against plain Envoy with the
same listener, routes and clusters on the same fake backend, in one run.
This page is written by `+"`make bench`"+` (`+"`e2e/bench`"+`); the raw figures of the
last run are in `+"`bench-results.json`"+` (not committed).

## How to reproduce

`+"```"+`
make bench          # ~9 minutes on 2 cores: builds, installs Envoy into .venv, runs, rewrites this page
make bench-smoke    # a few seconds: every configuration briefly, fails on any error (part of make test)
go run ./e2e/bench/cmd/streamgate-bench -h   # durations, concurrency, prompt sizes, config files
go run ./e2e/bench/cmd/streamgate-bench -configs b,c,d,f -json ''   # only some configurations ((b) always runs)
go run ./e2e/bench/cmd/streamgate-bench -cpuprofile-dir prof   # also a CPU profile of each streamgate per window: go tool pprof bin/streamgate prof/d-realistic-c64-1KiB-r1.pprof
`+"```"+`

The harness starts one in-process fakellm backend and every configuration at
once, then measures each load point on every configuration back to back, so
slow drift of the machine's load hits all of them alike:

- **Backend modes**: *zero-delay* (tokens as fast as the backend writes them:
  stresses the gateway) and *realistic* (150 ms to the first token, then 20 ms
  per token); in realistic mode the workers' first requests are spread over
  one stream's length so that c streams are open in steady state rather
  than arriving in bursts of c. Each stream carries `+fmt.Sprint(rep.Settings.Tokens)+` output tokens; the prompt is a
  single user message making the request body `+sizeName(rep.Settings.PromptBytes)+` (and `+sizeName(rep.Settings.LargePromptBytes)+` for the large-prompt row).
- **Usage**: `+usageSentence(rep.Targets)+`
- **Client side**: TTFT is request start to the first content token; ITL is
  the gap between content tokens of one stream (in zero-delay mode tokens
  coalesce in TCP segments, so ITL there mostly measures batching).
  Streams/s and tokens/s count streams that completed inside the measured
  windows: each point runs `+fmt.Sprint(rep.Settings.Rounds)+` times per configuration, interleaved
  `+interleaving(rep.Targets)+`, each time a `+fmt.Sprint(rep.Settings.DurationSeconds)+` s window after a `+fmt.Sprint(rep.Settings.WarmupSeconds)+` s warm-up,
  and the samples of all rounds are pooled.
- **Process side**: CPU seconds (user + system, all threads, from
  `+"`/proc/PID/stat`"+`) per 1,000 completed streams and peak RSS (`+"`VmRSS`"+`) of
  Envoy and of `+"`streamgate run`"+` (Envoy is its child).
- **Open streams**: `+fmt.Sprint(rep.Settings.IdleStreams)+` streams held open while the backend waits to send
  the first token; the RSS (and, for streamgate, Go heap in use) growth
  divided by the number of streams. Measured first, on fresh processes, so a
  heap grown by earlier load cannot hide the growth.
- Added latency is configuration minus (b) at the same point; ratios divide
  by (b).

## Configurations

`)
	for _, t := range rep.Targets {
		fmt.Fprintf(&w, "- **(%s) %s**", t.ID, t.Name)
		if t.Note != "" {
			fmt.Fprintf(&w, ": %s;", t.Note)
		} else {
			fmt.Fprint(&w, ":")
		}
		fmt.Fprintf(&w, " %s", t.usageNote())
		if t.Config != "" {
			fmt.Fprintf(&w, " (config `%s`)", t.Config)
		}
		if t.Skipped != "" {
			fmt.Fprintf(&w, " — *skipped: %s*", t.Skipped)
		}
		fmt.Fprintln(&w)
	}
	m := rep.Machine
	fmt.Fprintf(&w, `
## Latest run

%s, %.0f s. Machine: %d cores (%s), %d MiB, Linux %s, %s, Envoy %s.
Load average %s at the start, %s at the end.

`, rep.Started.UTC().Format("2006-01-02 15:04 UTC"), rep.Elapsed, m.Cores, m.CPU, m.MemoryMiB, m.Kernel, m.Go, m.Envoy, m.LoadAvg, m.LoadAvgEnd)
	if rep.Note != "" {
		fmt.Fprintf(&w, "%s\n\n", rep.Note)
	}
	for _, t := range rep.tables() {
		t.render(&w, true)
	}
	fmt.Fprintf(&w, "### Budget\n\n| check | measured | limit | status |\n|---|---|---|---|\n")
	for _, c := range rep.Budget {
		if c.Status == statusNotMeasured {
			fmt.Fprintf(&w, "| %s | – | %s | %s |\n", c.What, c.limitText(), c.Status)
			continue
		}
		fmt.Fprintf(&w, "| %s | %.3f %s | %s | %s |\n", c.What, c.Measured, c.Unit, c.limitText(), c.Status)
	}
	fmt.Fprintln(&w)
	return w.Bytes()
}

// interleaving shows the order configurations run each load point in, e.g.
// "a, b, c, a, b, ...".
func interleaving(ts []*target) string {
	var ids []string
	for _, t := range ts {
		if t.Skipped == "" {
			ids = append(ids, t.ID)
		}
	}
	return strings.Join(ids, ", ") + ", " + strings.Join(ids[:min(2, len(ids))], ", ") + ", ..."
}

// usageSentence says which configurations' clients ask for usage, wrapped
// like the page's other bullets.
func usageSentence(ts []*target) string {
	var ask, not []string
	for _, t := range ts {
		if t.AsksUsage {
			ask = append(ask, "("+t.ID+")")
		} else {
			not = append(not, "("+t.ID+")")
		}
	}
	s := "the clients of " + strings.Join(ask, ", ") + " ask for usage (`stream_options.include_usage`)"
	if len(not) > 0 {
		s += "; those of " + strings.Join(not, ", ") + " do not, as the official SDKs by default"
	}
	return wrapBullet(s+"; every stream must carry a usage chunk exactly when its client asked.", len("- **Usage**: "))
}

// wrapBullet breaks text into lines of at most ~76 characters for a list
// item whose first line already holds used characters; later lines are
// indented by two spaces.
func wrapBullet(text string, used int) string {
	var b strings.Builder
	n := used
	for i, word := range strings.Fields(text) {
		if i > 0 && n+1+len(word) > 76 {
			b.WriteString("\n  ")
			n = 2
		} else if i > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}

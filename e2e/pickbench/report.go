package pickbench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/streamgate/streamgate/e2e/bench"
)

// Report is one run's settings and results.
type Report struct {
	Started  time.Time     `json:"started"`
	Elapsed  float64       `json:"elapsed_seconds"`
	Machine  bench.Machine `json:"machine"`
	Note     string        `json:"note,omitempty"`
	Short    bool          `json:"short"`
	Settings Settings      `json:"settings"`
	Phases   []PhaseResult `json:"phases"`
	Checks   []Check       `json:"target_checks"`
}

// Settings are what a run measured with.
type Settings struct {
	Sims            SimSpec    `json:"sims"`
	Workloads       []Workload `json:"workloads"`
	Arms            []Arm      `json:"arms"`
	WarmupSeconds   float64    `json:"warmup_seconds"`
	DurationSeconds float64    `json:"duration_seconds"`
	Seed            uint64     `json:"seed"`
}

// PhaseResult is one workload on one arm. Times are real (wall-clock)
// milliseconds; multiply by the simulator speed for simulated GPU time.
type PhaseResult struct {
	Workload   string  `json:"workload"`
	Arm        string  `json:"arm"`
	Sent       int     `json:"sent"`
	Completed  int     `json:"completed"`
	Shed       int     `json:"shed"`
	Errors     int     `json:"errors"`
	Unfinished int     `json:"unfinished"`
	TTFTp50    float64 `json:"ttft_p50_ms"`
	TTFTp90    float64 `json:"ttft_p90_ms"`
	TTFTp99    float64 `json:"ttft_p99_ms"`
	TokensPerS float64 `json:"tokens_per_second"`
	// HitRate is prefix-cache hits / queries (prompt tokens) over the
	// window, summed over the simulators; -1 when not computed.
	HitRate float64        `json:"prefix_hit_rate"`
	Queries float64        `json:"prefix_queries"`
	Hits    float64        `json:"prefix_hits"`
	Servers map[string]int `json:"completed_per_server"`
	// PickReasons and ScrapeErrors are the gateway's picks by deciding
	// reason and failed scrapes by reason over the whole phase (picking arm).
	PickReasons  map[string]float64 `json:"pick_reasons,omitempty"`
	ScrapeErrors map[string]float64 `json:"scrape_errors,omitempty"`
	ErrorSamples []string           `json:"error_samples,omitempty"`
}

func summarize(workload, arm string, l *phaseLoad, before, after cacheCounters) PhaseResult {
	p := PhaseResult{Workload: workload, Arm: arm, Sent: l.sent, Completed: l.completed, Shed: l.shed,
		Errors: l.errors, Unfinished: l.unfinished, Servers: l.servers, ErrorSamples: l.samples, HitRate: -1}
	slices.Sort(l.ttft)
	p.TTFTp50, p.TTFTp90, p.TTFTp99 = quantileMs(l.ttft, 0.5), quantileMs(l.ttft, 0.9), quantileMs(l.ttft, 0.99)
	if s := l.window.Seconds(); s > 0 {
		p.TokensPerS = float64(l.tokens) / s
	}
	p.Queries, p.Hits = after.Queries-before.Queries, after.Hits-before.Hits
	if p.Queries > 0 {
		p.HitRate = p.Hits / p.Queries
	}
	return p
}

// quantileMs is the q quantile (nearest rank) of sorted d in milliseconds,
// 0 when empty.
func quantileMs(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	i := int(q*float64(len(d))+0.999999) - 1
	i = min(max(i, 0), len(d)-1)
	return float64(d[i]) / float64(time.Millisecond)
}

// Check is one line of the target.
type Check struct {
	What     string  `json:"what"`
	Measured float64 `json:"measured"`
	Limit    float64 `json:"limit"`
	Pass     bool    `json:"pass"`
}

// Noise allowances of the target checks: the machine is shared, so "not
// lower" and "no worse" allow this much.
const (
	throughputNoise = 0.05 // tokens/s may be 5 % lower
	ttftNoise       = 0.10 // uniform TTFT p90 may be 10 % higher
	ttftCut         = 0.30 // shared-prefix TTFT p90 must be 30 % lower
)

// targetChecks compares the picking arm with least-request: shared-prefix
// TTFT p90 at least 30 % lower and tokens/s not lower; uniform TTFT p90 and
// tokens/s no worse.
func targetChecks(ps []PhaseResult, shared, uniform string) []Check {
	find := func(w, a string) *PhaseResult {
		for i := range ps {
			if ps[i].Workload == w && ps[i].Arm == a {
				return &ps[i]
			}
		}
		return nil
	}
	var out []Check
	if lr, pk := find(shared, "least-request"), find(shared, "picking"); lr != nil && pk != nil && lr.TTFTp90 > 0 {
		cut := 1 - pk.TTFTp90/lr.TTFTp90
		out = append(out,
			Check{What: shared + ": TTFT p90 reduction (picking vs least-request)", Measured: cut, Limit: ttftCut, Pass: cut >= ttftCut},
			ratioCheck(shared+": tokens/s ratio (picking / least-request)", pk.TokensPerS, lr.TokensPerS, 1-throughputNoise, true))
	}
	if lr, pk := find(uniform, "least-request"), find(uniform, "picking"); lr != nil && pk != nil && lr.TTFTp90 > 0 {
		out = append(out,
			ratioCheck(uniform+": TTFT p90 ratio (picking / least-request)", pk.TTFTp90, lr.TTFTp90, 1+ttftNoise, false),
			ratioCheck(uniform+": tokens/s ratio (picking / least-request)", pk.TokensPerS, lr.TokensPerS, 1-throughputNoise, true))
	}
	return out
}

func ratioCheck(what string, a, b, limit float64, atLeast bool) Check {
	r := 0.0
	if b > 0 {
		r = a / b
	}
	pass := r <= limit
	if atLeast {
		pass = r >= limit
	}
	return Check{What: what, Measured: r, Limit: limit, Pass: pass}
}

// failures is ErrFailed when a phase saw errors or, in a short run, sent
// nothing, completed nothing or has no hit rate, or picking's shared-prefix
// hit rate is not above least-request's.
func (r *Report) failures() error {
	var errs []error
	for _, p := range r.Phases {
		if p.Errors > 0 {
			errs = append(errs, fmt.Errorf("%s on %s: %d errors, e.g. %s", p.Workload, p.Arm, p.Errors, strings.Join(p.ErrorSamples, "; ")))
		}
		if !r.Short {
			continue
		}
		if p.Completed == 0 || p.TokensPerS == 0 {
			errs = append(errs, fmt.Errorf("%s on %s: no traffic completed", p.Workload, p.Arm))
		}
		if p.HitRate < 0 {
			errs = append(errs, fmt.Errorf("%s on %s: prefix-cache hit rate not computed", p.Workload, p.Arm))
		}
	}
	if r.Short && len(r.Phases) > 0 {
		lr, pk := r.phase(r.Settings.Workloads[0].Name, "least-request"), r.phase(r.Settings.Workloads[0].Name, "picking")
		if lr != nil && pk != nil && pk.HitRate <= lr.HitRate {
			errs = append(errs, fmt.Errorf("%s: picking's prefix-cache hit rate %.3f is not above least-request's %.3f", lr.Workload, pk.HitRate, lr.HitRate))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrFailed, errors.Join(errs...))
	}
	return nil
}

func (r *Report) phase(w, a string) *PhaseResult {
	for i := range r.Phases {
		if r.Phases[i].Workload == w && r.Phases[i].Arm == a {
			return &r.Phases[i]
		}
	}
	return nil
}

// PrintText writes the results table and the target check.
func (r *Report) PrintText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tarm\tTTFT p50 ms\tp90 ms\tp99 ms\ttokens/s\tprefix hit\tsent\tdone\tshed\terrors\tcut\tper server\t")
	for _, p := range r.Phases {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%.0f\t%.0f\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t\n", p.Workload, p.Arm, p.TTFTp50, p.TTFTp90, p.TTFTp99,
			p.TokensPerS, hitText(p.HitRate), p.Sent, p.Completed, p.Shed, p.Errors, p.Unfinished, serverText(p.Servers))
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, c := range r.Checks {
		fmt.Fprintf(w, "%s %s: %.2f (limit %.2f)\n", passText(c.Pass), c.What, c.Measured, c.Limit)
	}
	for _, p := range r.Phases {
		if len(p.PickReasons) > 0 || len(p.ScrapeErrors) > 0 {
			fmt.Fprintf(w, "%s/%s: picks by reason %v, scrape errors %v\n", p.Workload, p.Arm, p.PickReasons, p.ScrapeErrors)
		}
	}
	for _, p := range r.Phases {
		for _, s := range p.ErrorSamples {
			fmt.Fprintf(w, "error sample %s/%s: %s\n", p.Workload, p.Arm, s)
		}
	}
}

func passText(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func hitText(h float64) string {
	if h < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%%", 100*h)
}

// serverText is the completed requests per simulator, in name order.
func serverText(m map[string]int) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprint(m[n])
	}
	return strings.Join(parts, "/")
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}

// Markers around the generated part of the Benchmark section.
const (
	markBegin = "<!-- pickbench:begin (written by make bench-picking; edit outside these markers) -->"
	markEnd   = "<!-- pickbench:end -->"
)

// mergePage puts generated between the markers of page, or appends a
// Benchmark section holding them when page has none.
func mergePage(page, generated []byte) []byte {
	if bytes.Contains(page, []byte(markBegin)) && bytes.Contains(page, []byte(markEnd)) {
		return bench.MergeMarked(page, generated, markBegin, markEnd)
	}
	var out bytes.Buffer
	out.Write(page)
	if len(page) > 0 {
		if !bytes.HasSuffix(page, []byte("\n")) {
			out.WriteByte('\n')
		}
		out.WriteByte('\n')
	}
	out.WriteString("## Benchmark\n\n")
	out.Write(bench.MergeMarked(nil, generated, markBegin, markEnd))
	return out.Bytes()
}

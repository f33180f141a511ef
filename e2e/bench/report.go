package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is everything one run measured; it is also the JSON output.
type Report struct {
	Started  time.Time     `json:"started"`
	Elapsed  float64       `json:"elapsed_seconds"`
	Machine  Machine       `json:"machine"`
	Settings Settings      `json:"settings"`
	Targets  []*target     `json:"targets"`
	Results  []*Result     `json:"results"`
	Idle     []*IdleResult `json:"open_streams"`
	Budget   []Check       `json:"budget"`
	Note     string        `json:"note,omitempty"`
}

// Settings are the run's parameters, recorded with its figures.
type Settings struct {
	Smoke            bool    `json:"smoke"`
	WarmupSeconds    float64 `json:"warmup_seconds"`
	DurationSeconds  float64 `json:"duration_seconds"`
	Rounds           int     `json:"rounds"`
	Concurrency      []int   `json:"concurrency"`
	Tokens           int     `json:"tokens_per_stream"`
	PromptBytes      int     `json:"prompt_bytes"`
	LargePromptBytes int     `json:"large_prompt_bytes"`
	IdleStreams      int     `json:"open_streams"`

	// Configs are the configurations run (-configs).
	Configs []string `json:"configs"`
}

// table is rows of cells rendered as aligned text or Markdown.
type table struct {
	title  string
	header []string
	rows   [][]string
}

func (t *table) render(w io.Writer, markdown bool) {
	if markdown {
		fmt.Fprintf(w, "### %s\n\n| %s |\n|%s\n", t.title, strings.Join(t.header, " | "), strings.Repeat("---|", len(t.header)))
		for _, r := range t.rows {
			fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
		}
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintf(w, "%s\n", t.title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(t.header, "\t")+"\t")
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
}

// cell formats v with its ratio to (b), when there is one.
func cell(v float64, prec int, ratios map[string]float64, key string) string {
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if r, ok := ratios[key]; ok {
		s += fmt.Sprintf(" (%.2f×)", r)
	}
	return s
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func (rep *Report) tables() []*table {
	client := &table{title: "Client side (ratio to (b) in parentheses; latencies in ms)", header: []string{
		"cfg", "mode", "c", "prompt", "streams/s", "tokens/s", "TTFT p50", "TTFT p90", "TTFT p99", "ITL p50", "ITL p99", "added TTFT p50", "added ITL p50", "errors"}}
	proc := &table{title: "Process side (CPU seconds per 1,000 streams; peak RSS in MiB)", header: []string{
		"cfg", "mode", "c", "prompt", "Envoy CPU", "streamgate CPU", "gateway CPU", "Envoy RSS", "streamgate RSS", "gateway RSS"}}
	for _, r := range rep.Results {
		ra := r.RatioToB
		addT, addI := "", ""
		if r.AddedMs != nil && r.Target != "b" {
			addT = fmt.Sprintf("%+.3f", r.AddedMs["ttft_p50"])
			addI = fmt.Sprintf("%+.3f", r.AddedMs["itl_p50"])
		}
		key := []string{r.Target, r.Point.Mode.Name, strconv.Itoa(r.Point.Concurrency), sizeName(r.Point.PromptBytes)}
		client.rows = append(client.rows, append(append([]string(nil), key...),
			cell(r.StreamsPerSec, 1, ra, "streams_per_sec"), cell(r.TokensPerSec, 0, ra, "tokens_per_sec"),
			cell(r.TTFT.P50, 2, ra, "ttft_p50"), cell(r.TTFT.P90, 2, ra, "ttft_p90"), cell(r.TTFT.P99, 2, ra, "ttft_p99"),
			cell(r.ITL.P50, 3, ra, "itl_p50"), cell(r.ITL.P99, 3, ra, "itl_p99"),
			addT, addI, strconv.Itoa(r.Errors)))
		if r.Envoy == nil {
			continue
		}
		sgCPU, sgRSS, gwRSS := "-", "-", r.Envoy.RSSMaxBytes
		if r.Streamgate != nil {
			sgCPU = fmt.Sprintf("%.3f", r.Streamgate.CPUPer1kStreams)
			sgRSS = fmt.Sprintf("%.1f", mib(r.Streamgate.RSSMaxBytes))
			gwRSS += r.Streamgate.RSSMaxBytes
		}
		proc.rows = append(proc.rows, append(append([]string(nil), key...),
			cell(r.Envoy.CPUPer1kStreams, 3, ra, "envoy_cpu_per_1k"), sgCPU, cell(r.gatewayCPUPer1k(), 3, ra, "gateway_cpu_per_1k"),
			cell(mib(r.Envoy.RSSMaxBytes), 1, ra, "envoy_rss"), sgRSS, cell(mib(gwRSS), 1, ra, "gateway_rss")))
	}
	idle := &table{title: "Open streams waiting for their first token (RSS in MiB, per-stream figures in KiB)", header: []string{
		"cfg", "streams", "Envoy RSS", "Envoy/stream", "streamgate RSS", "streamgate/stream", "sg heap/stream", "sg goroutines/stream", "gateway/stream"}}
	for _, r := range rep.Idle {
		if r.Error != "" {
			idle.rows = append(idle.rows, []string{r.Target, strconv.Itoa(r.Streams), "error: " + r.Error, "", "", "", "", "", ""})
			continue
		}
		sg := []string{"-", "-", "-", "-"}
		if r.SGRSSBase > 0 {
			sg = []string{
				fmt.Sprintf("%.1f → %.1f", mib(r.SGRSSBase), mib(r.SGRSSHeld)), fmt.Sprintf("%.1f", r.SGPerStream/1024),
				fmt.Sprintf("%.1f", r.SGHeapPerStream/1024), fmt.Sprintf("%.2f", r.SGGoroutinesPerStream),
			}
		}
		gw := fmt.Sprintf("%.1f", r.GatewayPerStream/1024)
		if r.RatioToB != 0 {
			gw += fmt.Sprintf(" (%.2f×)", r.RatioToB)
		}
		idle.rows = append(idle.rows, append(append([]string{r.Target, strconv.Itoa(r.Streams),
			fmt.Sprintf("%.1f → %.1f", mib(r.EnvoyRSSBase), mib(r.EnvoyRSSHeld)), fmt.Sprintf("%.1f", r.EnvoyPerStream/1024)}, sg...), gw))
	}
	return []*table{client, proc, idle}
}

// PrintText writes the configurations, the tables and the budget check.
func (rep *Report) PrintText(w io.Writer) {
	fmt.Fprintf(w, "\nStreamgate benchmark — %s, %d cores (%s), load average at start %s\n\n",
		rep.Started.UTC().Format(time.RFC3339), rep.Machine.Cores, rep.Machine.CPU, rep.Machine.LoadAvg)
	for _, t := range rep.Targets {
		fmt.Fprintf(w, "  (%s) %s", t.ID, t.Name)
		if t.Note != "" {
			fmt.Fprintf(w, " — %s", t.Note)
		}
		fmt.Fprintf(w, "; %s", t.usageNote())
		if t.Skipped != "" {
			fmt.Fprintf(w, " — SKIPPED: %s", t.Skipped)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	for _, t := range rep.tables() {
		t.render(w, false)
	}
	fmt.Fprintln(w, "Budget (this run's figures; ratios and differences against (b) unless the line names another):")
	for _, c := range rep.Budget {
		fmt.Fprintf(w, "  %s\n", c)
	}
	for _, r := range rep.Results {
		for _, m := range r.ErrorSamples {
			fmt.Fprintf(w, "  error (%s %s): %s\n", r.Target, r.Point, m)
		}
	}
}

// WriteJSON writes the report to path.
func (rep *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}

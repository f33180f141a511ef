package pickbench

import (
	"bytes"
	"fmt"
)

// Markdown renders the generated part of the Benchmark section: the setup,
// the results table and the target check of this run.
func (r *Report) Markdown() []byte {
	var w bytes.Buffer
	s := r.Settings
	sh, un := s.Workloads[0], s.Workloads[1]
	m := r.Machine
	fmt.Fprintf(&w, "Run %s, %.0f s%s. Machine: %d cores (%s), Linux %s, %s, Envoy %s; load average %s at the start, %s at the end.\n\n",
		r.Started.UTC().Format("2006-01-02 15:04 UTC"), r.Elapsed, shortText(r.Short), m.Cores, m.CPU, m.Kernel, m.Go, m.Envoy, m.LoadAvg, m.LoadAvgEnd)
	if r.Note != "" {
		fmt.Fprintf(&w, "%s\n\n", r.Note)
	}
	fmt.Fprintf(&w, "Fleet: %d `fakellm -sim vllm` servers, `-sim-kv-blocks %d -sim-max-num-seqs %d -sim-speed %g`, the last one `-sim-slow %g`. "+
		"Shared-prefix: %d system prompts of %d bytes, %d conversations open, %d turns each, %d-byte user messages, %.1f arrivals per simulated second. "+
		"Uniform: unique %d-byte system prompts plus a %d-byte user message, %.1f arrivals per simulated second. max_tokens %d. "+
		"Each phase: %.0f s warm-up, %.0f s measured. Times are wall-clock at speed %g (×%g for simulated GPU time).\n\n",
		s.Sims.Servers, s.Sims.KVBlocks, s.Sims.MaxNumSeqs, s.Sims.Speed, s.Sims.SlowFactor,
		sh.SystemPrompts, sh.SystemBytes, sh.Users, sh.Turns, sh.UserBytes, sh.Rate,
		un.SystemBytes, un.UserBytes, un.Rate, sh.MaxTokens, s.WarmupSeconds, s.DurationSeconds, s.Sims.Speed, s.Sims.Speed)
	for _, a := range s.Arms {
		if a.Picking != "" {
			fmt.Fprintf(&w, "Picking arm: `picking: %s`.\n\n", a.Picking)
		}
	}
	fmt.Fprintf(&w, "| workload | arm | TTFT p50 ms | TTFT p90 ms | TTFT p99 ms | tokens/s | prefix-cache hit rate | requests | shed (429/503) | errors | unfinished | completed per server (gpu-1 to gpu-%d, the last slow) |\n", s.Sims.Servers)
	fmt.Fprintln(&w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, p := range r.Phases {
		fmt.Fprintf(&w, "| %s | %s | %.0f | %.0f | %.0f | %.0f | %s | %d | %d | %d | %d | %s |\n", p.Workload, p.Arm, p.TTFTp50, p.TTFTp90, p.TTFTp99,
			p.TokensPerS, hitText(p.HitRate), p.Sent, p.Shed, p.Errors, p.Unfinished, serverText(p.Servers))
	}
	fmt.Fprintln(&w, "\n| target | measured | limit | |\n|---|---:|---:|---|")
	for _, c := range r.Checks {
		fmt.Fprintf(&w, "| %s | %.2f | %.2f | %s |\n", c.What, c.Measured, c.Limit, passText(c.Pass))
	}
	fmt.Fprintln(&w)
	return w.Bytes()
}

func shortText(short bool) string {
	if short {
		return " (short mode)"
	}
	return ""
}

// Package pickbench is the endpoint-picking benchmark (`make
// bench-picking`): it runs a fleet of simulated vLLM servers (fakellm -sim
// vllm, one slower than the rest) behind real Envoy and `streamgate run`,
// once with Envoy's LEAST_REQUEST and once with load-aware picking, each on
// fresh simulators, under a shared-prefix multi-turn workload and a uniform
// one at an open-loop Poisson arrival rate, and reports client-side time to
// first token, tokens/s, the simulators' prefix-cache hit rate and the
// requests shed, with the target checked.
package pickbench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/streamgate/streamgate/e2e/bench"
	"github.com/streamgate/streamgate/envoy"
)

// ErrFailed means the run finished but saw errors (or, in short mode, a
// phase without traffic or without a hit rate).
var ErrFailed = errors.New("picking benchmark failed")

// Options are the settings of one run.
type Options struct {
	StreamgateBin, FakellmBin, EnvoyBin string
	Sims                                SimSpec
	Shared, Uniform                     Workload
	Arms                                []Arm
	Warmup, Duration, Drain             time.Duration
	Seed                                uint64
	Only                                string // run only this workload
	Short                               bool
	JSONPath, MarkdownPath, Note        string
	KeepDir                             bool
}

// DefaultPicking is the picking block of the load-aware arm.
const DefaultPicking = "{metrics: vllm, interval: 50ms}"

func parseOptions(args []string, stderr io.Writer) (Options, error) {
	fs := flag.NewFlagSet("streamgate-pickbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	fs.StringVar(&o.StreamgateBin, "streamgate", "bin/streamgate", "streamgate `binary`")
	fs.StringVar(&o.FakellmBin, "fakellm", "bin/fakellm", "fakellm `binary` (the simulators)")
	fs.StringVar(&o.EnvoyBin, "envoy", "", "Envoy `binary` (default: $ENVOY_BIN, .venv, PATH)")
	fs.IntVar(&o.Sims.Servers, "servers", 4, "simulated servers")
	fs.Float64Var(&o.Sims.SlowFactor, "slow", 1.5, "-sim-slow of the last server")
	fs.IntVar(&o.Sims.KVBlocks, "kv-blocks", 512, "-sim-kv-blocks of every server (16 tokens a block)")
	fs.IntVar(&o.Sims.MaxNumSeqs, "max-num-seqs", 8, "-sim-max-num-seqs of every server")
	fs.Float64Var(&o.Sims.Speed, "speed", 4, "-sim-speed: simulated time runs this many times faster than real time")
	o.Shared = Workload{Name: "shared-prefix"}
	fs.IntVar(&o.Shared.SystemPrompts, "system-prompts", 8, "shared-prefix: distinct system prompts")
	fs.IntVar(&o.Shared.SystemBytes, "system-bytes", 6<<10, "shared-prefix: bytes of each system prompt")
	fs.IntVar(&o.Shared.Users, "users", 96, "shared-prefix: conversations open at a time")
	fs.IntVar(&o.Shared.Turns, "turns", 4, "shared-prefix: turns per conversation")
	fs.IntVar(&o.Shared.UserBytes, "user-bytes", 384, "bytes of each user message")
	fs.Float64Var(&o.Shared.Rate, "rate-shared", 13, "shared-prefix arrivals per simulated second")
	o.Uniform = Workload{Name: "uniform"}
	fs.IntVar(&o.Uniform.SystemBytes, "uniform-bytes", 7<<10, "uniform: bytes of each (unique) system prompt")
	fs.Float64Var(&o.Uniform.Rate, "rate-uniform", 12, "uniform arrivals per simulated second")
	maxTokens := fs.Int("max-tokens", 48, "max_tokens of every request")
	picking := fs.String("picking", DefaultPicking, "the load-aware arm's picking block (YAML flow mapping)")
	fs.DurationVar(&o.Warmup, "warmup", 10*time.Second, "unmeasured start of each phase (caches fill)")
	fs.DurationVar(&o.Duration, "duration", 35*time.Second, "measured window of each phase")
	fs.DurationVar(&o.Drain, "drain", 30*time.Second, "how long requests of the window may finish after it")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of arrivals and prompts (the same for both arms)")
	fs.StringVar(&o.Only, "only", "", "run only this `workload` (shared-prefix or uniform)")
	fs.BoolVar(&o.Short, "short", false, "a ~40 s run for make test: fails on errors, no traffic or no hit rate; timings are not checked")
	fs.StringVar(&o.JSONPath, "json", "bench-picking.json", "write results as JSON to `file` (empty: don't)")
	fs.StringVar(&o.MarkdownPath, "markdown", "", "write the results between the markers of the Benchmark section of `file`")
	fs.StringVar(&o.Note, "note", "", "a remark recorded with the run")
	fs.BoolVar(&o.KeepDir, "keep", false, "keep the run directory (configs, logs)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("cannot run: unexpected arguments %q", fs.Args())
	}
	o.Shared.MaxTokens, o.Uniform.MaxTokens, o.Sims.Tokens = *maxTokens, *maxTokens, *maxTokens
	o.Uniform.UserBytes = o.Shared.UserBytes
	if o.Short {
		o.Warmup, o.Duration, o.Drain = 2*time.Second, 4*time.Second, 10*time.Second
	}
	o.Arms = []Arm{{Name: "least-request"}, {Name: "picking", Picking: *picking}}
	if o.EnvoyBin == "" {
		wd, _ := os.Getwd()
		bin, err := envoy.Find(wd)
		if err != nil {
			return o, err
		}
		o.EnvoyBin = bin
	}
	if o.Sims.Servers < 2 || o.Sims.Speed <= 0 || o.Shared.Rate <= 0 || o.Uniform.Rate <= 0 || o.Shared.SystemPrompts < 1 || o.Shared.Turns < 1 || o.Shared.Users < 1 {
		return o, fmt.Errorf("cannot run: -servers must be at least 2, -speed and the rates positive, -system-prompts, -turns and -users at least 1")
	}
	return o, nil
}

// Main parses args, runs the benchmark, prints the table and the target
// check and writes the outputs. The error is non-nil when the run could
// not complete or saw errors; a missed target is reported, not an error.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	rep, err := Run(ctx, o, stderr)
	if rep == nil {
		return err
	}
	rep.PrintText(stdout)
	if o.JSONPath != "" {
		if werr := rep.WriteJSON(o.JSONPath); werr != nil {
			return werr
		}
		fmt.Fprintf(stdout, "wrote %s\n", o.JSONPath)
	}
	if o.MarkdownPath != "" {
		if werr := writeMarkdown(o.MarkdownPath, rep.Markdown()); werr != nil {
			return werr
		}
		fmt.Fprintf(stdout, "wrote %s\n", o.MarkdownPath)
	}
	if err != nil {
		return err
	}
	return rep.failures()
}

// Run measures every workload on every arm, one phase after another, each
// on fresh simulators and a fresh gateway.
func Run(ctx context.Context, o Options, log io.Writer) (*Report, error) {
	dir, err := os.MkdirTemp("", "pickbench-")
	if err != nil {
		return nil, fmt.Errorf("cannot create run directory: %w", err)
	}
	if o.KeepDir {
		fmt.Fprintf(log, "run directory: %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	rep := &Report{Started: time.Now(), Machine: bench.DescribeMachine(ctx, o.EnvoyBin), Note: o.Note, Short: o.Short,
		Settings: Settings{Sims: o.Sims, Workloads: []Workload{o.Shared, o.Uniform}, Arms: o.Arms,
			WarmupSeconds: o.Warmup.Seconds(), DurationSeconds: o.Duration.Seconds(), Seed: o.Seed}}
	for wi, w := range []Workload{o.Shared, o.Uniform} {
		if o.Only != "" && o.Only != w.Name {
			continue
		}
		for _, arm := range o.Arms {
			fmt.Fprintf(log, "%s on %s: %.0f requests/s (%.1f per simulated second) for %s after %s\n",
				w.Name, arm.Name, w.Rate*o.Sims.Speed, w.Rate, o.Duration, o.Warmup)
			ph, err := runOne(ctx, o, w, arm, o.Seed+uint64(wi), dir)
			if err != nil {
				return rep, fmt.Errorf("cannot run %s on %s: %w", w.Name, arm.Name, err)
			}
			rep.Phases = append(rep.Phases, ph)
		}
	}
	rep.Elapsed = time.Since(rep.Started).Seconds()
	rep.Machine.LoadAvgEnd = bench.LoadAvg()
	rep.Checks = targetChecks(rep.Phases, o.Shared.Name, o.Uniform.Name)
	return rep, nil
}

// runOne is one phase: fresh simulators, a gateway for arm, the load.
func runOne(ctx context.Context, o Options, w Workload, arm Arm, seed uint64, dir string) (PhaseResult, error) {
	tag := w.Name + "-" + arm.Name
	f, err := startFleet(ctx, o.FakellmBin, o.Sims, dir, tag)
	if err != nil {
		return PhaseResult{}, err
	}
	defer f.stop()
	g, err := startGateway(ctx, o.StreamgateBin, o.EnvoyBin, dir, tag, f.addrs, arm, benchModel)
	if err != nil {
		return PhaseResult{}, err
	}
	defer g.stop()
	var before, after cacheCounters
	var scrapeErr error
	scrape := func(open bool) {
		c, err := f.prefixCounters(ctx)
		if err != nil {
			scrapeErr = errors.Join(scrapeErr, err)
		}
		if open {
			before = c
		} else {
			after = c
		}
	}
	load := runPhase(ctx, phaseSpec{url: g.url, gen: newGenerator(w, seed), rate: w.Rate * o.Sims.Speed, seed: seed,
		warmup: o.Warmup, duration: o.Duration, drain: o.Drain, atWindow: scrape})
	ph := summarize(w.Name, arm.Name, load, before, after)
	if fams, err := scrapeFamilies(ctx, g.metricsURL); err == nil {
		ph.PickReasons = byLabel(fams["streamgate_picking_picks_total"], "reason")
		ph.ScrapeErrors = byLabel(fams["streamgate_picking_scrape_errors_total"], "reason")
	}
	if scrapeErr != nil {
		ph.HitRate = -1
		ph.ErrorSamples = append(ph.ErrorSamples, scrapeErr.Error())
	}
	if o.KeepDir {
		_ = os.WriteFile(filepath.Join(dir, tag+".done"), nil, 0o600)
	}
	return ph, ctx.Err()
}

// writeMarkdown puts generated between the benchmark markers of path,
// adding a "Benchmark" section with the markers at the end of the page when
// it has none.
func writeMarkdown(path string, generated []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("cannot create %s: %w", filepath.Dir(path), err)
	}
	page, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cannot read %s: %w", path, err)
	}
	if err := os.WriteFile(path, mergePage(page, generated), 0o644); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}

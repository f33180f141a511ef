// Package bench is Streamgate's benchmark harness: in one run it drives the
// same fake backend directly, through plain Envoy, and through Envoy with
// Streamgate (pass-through; the policy path with clients that ask for
// usage and with clients that do not; translating; everything on), measures
// time to first token, inter-token latency, throughput and the gateway
// processes' CPU and memory, and reports every figure as a ratio to plain
// Envoy. `make bench` runs it in full; `make bench-smoke` briefly.
package bench

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/streamgate/streamgate/envoy"
)

//go:embed configs/passthrough.yaml
var passthroughConfig string

//go:embed configs/full.yaml
var fullConfig string

//go:embed configs/translate.yaml
var translateConfig string

// ErrFailed means the run finished but saw errors it was told to fail on.
var ErrFailed = errors.New("benchmark saw errors")

// Options are the command-line settings of one run.
type Options struct {
	StreamgateBin string
	EnvoyBin      string
	FullConfig    string // template file for (d) and (f); empty: the built-in one
	FullBin       string // streamgate binary for (d) and (f); empty: StreamgateBin
	Warmup        time.Duration
	Duration      time.Duration
	Drain         time.Duration
	Rounds        int
	Concurrency   []int
	Tokens        int
	PromptBytes   int
	LargePrompt   int
	IdleStreams   int
	Settle        time.Duration
	APIKey        string
	JSONPath      string
	MarkdownPath  string
	Note          string
	Smoke         bool
	FailOnErrors  bool

	// Configs are the ids of the configurations to run, in run order; they
	// always hold the baseline (b).
	Configs []string
	// ProfileDir, when set, runs every streamgate with -pprof and keeps a
	// CPU profile of each measured window there (profile.go).
	ProfileDir string
	profiler   *cpuProfiler
}

// Main parses args, runs the benchmark and writes its outputs.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	rep, err := Run(ctx, o, stderr)
	if rep != nil {
		rep.PrintText(stdout)
		if o.JSONPath != "" {
			if werr := rep.WriteJSON(o.JSONPath); werr != nil {
				return werr
			}
			fmt.Fprintf(stdout, "\nwrote %s\n", o.JSONPath)
		}
		if o.MarkdownPath != "" {
			if werr := os.MkdirAll(filepath.Dir(o.MarkdownPath), 0o755); werr != nil {
				return fmt.Errorf("cannot create %s: %w", filepath.Dir(o.MarkdownPath), werr)
			}
			page, _ := os.ReadFile(o.MarkdownPath)
			if werr := os.WriteFile(o.MarkdownPath, mergeMarkdown(page, rep.Markdown()), 0o644); werr != nil {
				return fmt.Errorf("cannot write %s: %w", o.MarkdownPath, werr)
			}
			fmt.Fprintf(stdout, "wrote %s\n", o.MarkdownPath)
		}
	}
	if err != nil {
		return err
	}
	if o.FailOnErrors {
		return rep.failures()
	}
	return nil
}

func parseOptions(args []string, stderr io.Writer) (Options, error) {
	fs := flag.NewFlagSet("streamgate-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	fs.StringVar(&o.StreamgateBin, "streamgate", "bin/streamgate", "streamgate `binary` to run")
	fs.StringVar(&o.EnvoyBin, "envoy", "", "Envoy `binary` (default: $ENVOY_BIN, .venv, PATH)")
	fs.StringVar(&o.FullConfig, "full-config", "", "config template `file` for configurations (d) and (f) (default: the built-in configs/full.yaml)")
	fs.StringVar(&o.FullBin, "full-streamgate", "", "streamgate `binary` for configurations (d) and (f) (default: -streamgate); compares a change with the current build in one run")
	configs := fs.String("configs", strings.Join(allConfigs, ","), "comma-separated `ids` of the configurations to run, e.g. b,c,d,f; (b), the reference, always runs")
	fs.DurationVar(&o.Warmup, "warmup", time.Second, "unmeasured warm-up per load point")
	fs.DurationVar(&o.Duration, "duration", 4*time.Second, "measured window per load point and round")
	fs.IntVar(&o.Rounds, "rounds", 2, "times each load point runs on every configuration, interleaved; samples are pooled")
	fs.DurationVar(&o.Drain, "drain", 10*time.Second, "how long running streams may finish after a window")
	conc := fs.String("concurrency", "1,64,512", "comma-separated concurrent streams per load point")
	fs.IntVar(&o.Tokens, "tokens", 16, "output tokens per stream")
	fs.IntVar(&o.PromptBytes, "prompt", 1<<10, "request body `bytes`")
	fs.IntVar(&o.LargePrompt, "large-prompt", 256<<10, "request body `bytes` of the large-prompt point (realistic mode, c=64)")
	fs.IntVar(&o.IdleStreams, "open-streams", 1000, "streams held open for the memory-per-stream figure")
	fs.DurationVar(&o.Settle, "settle", time.Second, "pause before each memory reading")
	fs.StringVar(&o.APIKey, "api-key", "sk-bench-0123456789", "API key every request carries")
	fs.StringVar(&o.JSONPath, "json", "bench-results.json", "write results as JSON to `file` (empty: don't)")
	fs.StringVar(&o.MarkdownPath, "markdown", "", "write the performance page to `file`")
	fs.StringVar(&o.Note, "note", "", "a remark recorded with the run")
	fs.BoolVar(&o.Smoke, "smoke", false, "a few-second run of every configuration that fails on any error (timings are not checked; writes no -markdown)")
	fs.BoolVar(&o.FailOnErrors, "fail-on-errors", false, "exit non-zero when any stream failed")
	fs.StringVar(&o.ProfileDir, "cpuprofile-dir", "", "run streamgate with -pprof and write a CPU profile of every measured window of every streamgate configuration to `dir`")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.Rounds < 1 {
		return o, fmt.Errorf("-rounds must be at least 1")
	}
	if o.Smoke && o.MarkdownPath != "" {
		return o, fmt.Errorf("-smoke cannot write -markdown: its figures are not measurements")
	}
	var err error
	if o.Configs, err = parseConfigs(*configs); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	for _, s := range strings.Split(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return o, fmt.Errorf("cannot parse -concurrency %q: want positive integers", *conc)
		}
		o.Concurrency = append(o.Concurrency, n)
	}
	if o.Smoke {
		o.Warmup, o.Duration, o.Drain, o.Rounds = 100*time.Millisecond, 300*time.Millisecond, 5*time.Second, 1
		o.Concurrency, o.Tokens, o.LargePrompt = []int{8}, 4, 64<<10
		o.IdleStreams, o.Settle, o.FailOnErrors = 50, 200*time.Millisecond, true
	}
	if o.FullBin == "" {
		o.FullBin = o.StreamgateBin
	}
	if o.EnvoyBin == "" {
		wd, _ := os.Getwd()
		bin, err := envoy.Find(wd)
		if err != nil {
			return o, err
		}
		o.EnvoyBin = bin
	}
	return o, nil
}

// Run starts the backend and every configuration, measures them and
// returns the report. Progress goes to log.
func Run(ctx context.Context, o Options, log io.Writer) (*Report, error) {
	if err := raiseFileLimit(); err != nil {
		return nil, err
	}
	full, fullName := fullConfig, "e2e/bench/configs/full.yaml"
	if o.FullConfig != "" {
		b, err := os.ReadFile(o.FullConfig)
		if err != nil {
			return nil, fmt.Errorf("cannot read -full-config: %w", err)
		}
		full, fullName = string(b), o.FullConfig
	}
	rep := &Report{Started: time.Now(), Machine: describeMachine(ctx, o.EnvoyBin), Note: o.Note, Settings: Settings{
		Smoke: o.Smoke, WarmupSeconds: o.Warmup.Seconds(), DurationSeconds: o.Duration.Seconds(), Rounds: o.Rounds, Concurrency: o.Concurrency,
		Tokens: o.Tokens, PromptBytes: o.PromptBytes, LargePromptBytes: o.LargePrompt, IdleStreams: o.IdleStreams,
		Configs: o.Configs,
	}}
	dir, err := os.MkdirTemp("", "streamgate-bench-")
	if err != nil {
		return nil, fmt.Errorf("cannot create work dir: %w", err)
	}
	b, err := startBackend()
	if err != nil {
		return nil, err
	}
	defer b.close()

	rep.Targets = configurations(o, full, fullName, b)
	if o.ProfileDir != "" {
		o.profiler = &cpuProfiler{dir: o.ProfileDir, log: log}
		for _, t := range rep.Targets {
			t.pprof = t.Binary != ""
		}
	}
	defer func() {
		for _, t := range rep.Targets {
			if t.stop != nil {
				t.stop()
			}
		}
	}()
	fmt.Fprintf(log, "bench: starting configurations (logs in %s)\n", dir)
	starts := map[string]func() error{}
	for _, t := range rep.Targets {
		if t.Skipped == "" && t.kind != direct {
			starts[t.ID] = func() error { return t.start(ctx, o, dir, b) }
		}
	}
	errs := make(chan error, len(starts))
	for id, start := range starts {
		go func() {
			err := start()
			// A port picked free may be taken (by another configuration or
			// an outgoing connection) before the process binds it: retry
			// with fresh ports.
			for attempt := 1; err != nil && attempt < 3 && lostPortRace(rep.target(id)); attempt++ {
				fmt.Fprintf(log, "bench: configuration (%s) lost a port to another process; retrying\n", id)
				if t := rep.target(id); t.stop != nil {
					t.stop()
				}
				err = start()
			}
			if err != nil {
				errs <- fmt.Errorf("cannot start configuration (%s): %w", id, err)
				return
			}
			errs <- nil
		}()
	}
	var startErr error
	for range starts {
		startErr = errors.Join(startErr, <-errs)
	}
	if startErr != nil {
		return nil, startErr
	}
	live := []*target{}
	for _, t := range rep.Targets {
		if t.Skipped == "" {
			live = append(live, t)
		}
	}

	for _, t := range live {
		if t.kind == direct {
			continue
		}
		fmt.Fprintf(log, "bench: (%s) holding %d open streams\n", t.ID, o.IdleStreams)
		rep.Idle = append(rep.Idle, measureIdle(ctx, t, b, idleSpec{streams: o.IdleStreams, settle: o.Settle, apiKey: o.APIKey}))
	}
	compareIdle(rep.Idle, baselineID)

	for _, p := range points(o) {
		runs := make([]*run, len(live))
		for round := range o.Rounds {
			for i, t := range live {
				if ctx.Err() != nil {
					return rep, ctx.Err()
				}
				runs[i] = runs[i].add(measure(ctx, t, p, o))
				if round == o.Rounds-1 {
					r := newResult(t, p, runs[i].load, runs[i].cpu, runs[i].rss)
					fmt.Fprintf(log, "bench: (%s) %-32s %8.1f streams/s  TTFT p50 %8.2f ms  ITL p50 %7.3f ms  errors %d\n",
						t.ID, p, r.StreamsPerSec, r.TTFT.P50, r.ITL.P50, r.Errors)
					rep.Results = append(rep.Results, r)
				}
			}
		}
	}
	compareToBaseline(rep.Results, baselineID)
	rep.Budget = budget(rep.Results, rep.Idle, o.PromptBytes)
	rep.Machine.LoadAvgEnd = loadAvg()
	rep.Elapsed = time.Since(rep.Started).Seconds()
	if rep.failures() == nil {
		// Stop the processes before removing their logs; stopping twice is harmless.
		for _, t := range rep.Targets {
			if t.stop != nil {
				t.stop()
				t.stop = nil
			}
		}
		_ = os.RemoveAll(dir)
		fmt.Fprintf(log, "bench: done in %.0fs\n", rep.Elapsed)
	} else {
		fmt.Fprintf(log, "bench: done in %.0fs with errors; process logs kept in %s\n", rep.Elapsed, filepath.Clean(dir))
	}
	return rep, nil
}

// points lists the load points in the order they run: both modes at every
// concurrency, then the large prompt.
func points(o Options) []Point {
	var out []Point
	for _, m := range []Mode{ZeroDelay, Realistic} {
		for _, c := range o.Concurrency {
			out = append(out, Point{Mode: m, Concurrency: c, PromptBytes: o.PromptBytes})
		}
	}
	largeC := 64
	if o.Smoke {
		largeC = o.Concurrency[len(o.Concurrency)-1]
	}
	return append(out, Point{Mode: Realistic, Concurrency: largeC, PromptBytes: o.LargePrompt})
}

// run is one target's measurements at one point, over rounds.
type run struct {
	load *loadResult
	cpu  []float64 // CPU seconds per process
	rss  []int64   // peak RSS per process
}

func (r *run) add(o *run) *run {
	if r == nil {
		return o
	}
	r.load.merge(o.load)
	for i := range r.cpu {
		r.cpu[i] += o.cpu[i]
		r.rss[i] = max(r.rss[i], o.rss[i])
	}
	return r
}

// measure runs one load point against one target while sampling its
// processes.
func measure(ctx context.Context, t *target, p Point, o Options) *run {
	spec := &loadSpec{target: t, point: p, tokens: o.Tokens, warmup: o.Warmup, duration: o.Duration, drain: o.Drain, apiKey: o.APIKey}
	s := newSampler(t.pids())
	var cpu0, cpu1 []procSample
	profiled := func() {}
	spec.atWindow = func(open bool) {
		if open {
			cpu0 = s.cpu()
			profiled = o.profiler.start(ctx, t, p, o.Duration)
		} else {
			cpu1 = s.cpu()
		}
	}
	lr := runLoad(ctx, spec)
	profiled()
	r := &run{load: lr, rss: s.finish(), cpu: make([]float64, len(t.pids()))}
	for i := range r.cpu {
		r.cpu[i] = cpu1[i].cpuSeconds - cpu0[i].cpuSeconds
	}
	return r
}

// failures reports every error the run saw, and points where no stream
// completed.
func (rep *Report) failures() error {
	var errs []error
	for _, r := range rep.Results {
		if r.Errors > 0 {
			errs = append(errs, fmt.Errorf("(%s) %s: %d errors, e.g. %v", r.Target, r.Point, r.Errors, r.ErrorSamples))
		}
		if r.Streams == 0 {
			errs = append(errs, fmt.Errorf("(%s) %s: no stream completed", r.Target, r.Point))
		}
	}
	for _, r := range rep.Idle {
		if r.Error != "" {
			errs = append(errs, fmt.Errorf("(%s) open streams: %s", r.Target, r.Error))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w:\n%w", ErrFailed, errors.Join(errs...))
	}
	return nil
}

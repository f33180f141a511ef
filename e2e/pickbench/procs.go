package pickbench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/streamgate/streamgate/e2e/bench"
)

// proc is one child process of the harness (a simulator or streamgate).
type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	log    *os.File
}

// startProc runs bin with args, its output in dir/name.log; the child gets
// SIGTERM if the harness dies.
func startProc(name, bin string, args, env []string, dir string) (*proc, error) {
	logs, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, fmt.Errorf("cannot create log file: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logs.Close()
		return nil, fmt.Errorf("cannot start %s: %w", bin, err)
	}
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{}), log: logs}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	return p, nil
}

// stop sends SIGTERM, then SIGKILL after grace, and waits for the exit.
func (p *proc) stop(grace time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.log.Close()
}

// waitHTTP polls url until it answers 200 (with the given headers), the
// process exits or limit passes.
func (p *proc) waitHTTP(ctx context.Context, url string, h http.Header, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited early; see %s", p.name, p.log.Name())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("cannot poll %s: %w", url, err)
		}
		for k, v := range h {
			req.Header[k] = v
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s; see %s", p.name, limit, p.log.Name())
}

// SimSpec describes the simulated fleet: every server alike but for one
// slower one.
type SimSpec struct {
	Servers    int     `json:"servers"`
	SlowFactor float64 `json:"slow_factor"` // -sim-slow of the last server
	KVBlocks   int     `json:"kv_blocks"`
	MaxNumSeqs int     `json:"max_num_seqs"`
	Speed      float64 `json:"speed"`
	// Tokens is every reply's length (fakellm -tokens): max_tokens.
	Tokens int `json:"tokens"`
}

// fleet is a set of running `fakellm -sim vllm` processes.
type fleet struct {
	addrs []string
	procs []*proc
}

// startFleet starts spec.Servers simulators on free loopback ports, the
// last one spec.SlowFactor times slower, and waits for their /health.
func startFleet(ctx context.Context, fakellmBin string, spec SimSpec, dir, tag string) (*fleet, error) {
	addrs, err := freePorts(spec.Servers)
	if err != nil {
		return nil, err
	}
	f := &fleet{addrs: addrs}
	for i, addr := range addrs {
		slow := 1.0
		if i == spec.Servers-1 {
			slow = spec.SlowFactor
		}
		name := fmt.Sprintf("gpu-%d", i+1)
		args := []string{"-sim", "vllm", "-listen", addr, "-name", name, "-tokens", strconv.Itoa(spec.Tokens),
			"-sim-kv-blocks", strconv.Itoa(spec.KVBlocks),
			"-sim-max-num-seqs", strconv.Itoa(spec.MaxNumSeqs),
			"-sim-speed", strconv.FormatFloat(spec.Speed, 'g', -1, 64),
			"-sim-slow", strconv.FormatFloat(slow, 'g', -1, 64)}
		p, err := startProc(tag+"-"+name, fakellmBin, args, nil, dir)
		if err != nil {
			f.stop()
			return nil, err
		}
		f.procs = append(f.procs, p)
	}
	for i, p := range f.procs {
		if err := p.waitHTTP(ctx, "http://"+addrs[i]+"/health", nil, 15*time.Second); err != nil {
			f.stop()
			return nil, err
		}
	}
	return f, nil
}

func (f *fleet) stop() {
	for _, p := range f.procs {
		p.stop(5 * time.Second)
	}
}

// cacheCounters are prefix-cache token counters summed over a fleet.
type cacheCounters struct {
	Queries, Hits float64
}

// prefixCounters scrapes every simulator's /metrics and sums
// vllm:prefix_cache_queries_total and vllm:prefix_cache_hits_total.
func (f *fleet) prefixCounters(ctx context.Context) (cacheCounters, error) {
	var sum cacheCounters
	for _, addr := range f.addrs {
		c, err := scrapePrefix(ctx, "http://"+addr+"/metrics")
		if err != nil {
			return cacheCounters{}, err
		}
		sum.Queries += c.Queries
		sum.Hits += c.Hits
	}
	return sum, nil
}

// Names of the vLLM prefix-cache counters the simulator serves.
const (
	metricQueries = "vllm:prefix_cache_queries_total"
	metricHits    = "vllm:prefix_cache_hits_total"
)

func scrapePrefix(ctx context.Context, url string) (cacheCounters, error) {
	fams, err := scrapeFamilies(ctx, url)
	if err != nil {
		return cacheCounters{}, err
	}
	return prefixOf(fams)
}

// scrapeFamilies reads the Prometheus text at url.
func scrapeFamilies(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot scrape %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("cannot parse the metrics of %s: %w", url, err)
	}
	return fams, nil
}

// parsePrefix reads the prefix-cache counters from Prometheus text,
// summing over label sets; it fails when either is missing.
func parsePrefix(r io.Reader) (cacheCounters, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return cacheCounters{}, fmt.Errorf("cannot parse metrics: %w", err)
	}
	return prefixOf(fams)
}

// byLabel sums a counter family's series by the value of label.
func byLabel(f *dto.MetricFamily, label string) map[string]float64 {
	if f == nil {
		return nil
	}
	out := map[string]float64{}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				out[l.GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}

func prefixOf(fams map[string]*dto.MetricFamily) (cacheCounters, error) {
	q, okQ := sumCounter(fams[metricQueries])
	h, okH := sumCounter(fams[metricHits])
	if !okQ || !okH {
		return cacheCounters{}, fmt.Errorf("cannot find %s and %s in the metrics", metricQueries, metricHits)
	}
	return cacheCounters{Queries: q, Hits: h}, nil
}

func sumCounter(f *dto.MetricFamily) (float64, bool) {
	if f == nil || len(f.GetMetric()) == 0 {
		return 0, false
	}
	var s float64
	for _, m := range f.GetMetric() {
		switch {
		case m.GetCounter() != nil:
			s += m.GetCounter().GetValue()
		case m.GetUntyped() != nil:
			s += m.GetUntyped().GetValue()
		}
	}
	return s, true
}

// freePorts returns n free loopback addresses.
func freePorts(n int) ([]string, error) { return bench.FreePorts(n) }

// quote is a YAML double-quoted string.
func quote(s string) string { return strconv.Quote(strings.TrimSpace(s)) }

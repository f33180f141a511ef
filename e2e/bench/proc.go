package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/procfs"
)

// procSample is one reading of a process from /proc.
type procSample struct {
	cpuSeconds float64 // user + system, all threads
	rssBytes   int64
}

// readProc reads a process's CPU time (/proc/PID/stat) and resident set
// (VmRSS of /proc/PID/status).
func readProc(pid int) (procSample, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return procSample{}, fmt.Errorf("cannot open /proc/%d: %w", pid, err)
	}
	st, err := p.Stat()
	if err != nil {
		return procSample{}, fmt.Errorf("cannot read /proc/%d/stat: %w", pid, err)
	}
	status, err := p.NewStatus()
	if err != nil {
		return procSample{}, fmt.Errorf("cannot read /proc/%d/status: %w", pid, err)
	}
	return procSample{cpuSeconds: st.CPUTime(), rssBytes: int64(status.VmRSS)}, nil
}

// findChild returns the pid of pid's child whose command name is comm,
// waiting up to limit for it to appear.
func findChild(pid int, comm string, limit time.Duration) (int, error) {
	deadline := time.Now().Add(limit)
	for {
		procs, err := procfs.AllProcs()
		if err != nil {
			return 0, fmt.Errorf("cannot list processes: %w", err)
		}
		for _, p := range procs {
			st, err := p.Stat()
			if err == nil && st.PPID == pid && st.Comm == comm {
				return p.PID, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("cannot find a %q child of pid %d after %s", comm, pid, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// usage is a process's share of one load run.
type usage struct {
	CPUSeconds      float64 `json:"cpu_seconds"`
	CPUPer1kStreams float64 `json:"cpu_seconds_per_1k_streams"`
	RSSMaxBytes     int64   `json:"rss_max_bytes"`
}

// sampler follows the processes of one target during a load run: CPU time
// at the window's edges and the largest resident set seen.
type sampler struct {
	pids []int
	mu   sync.Mutex
	max  []int64
	stop chan struct{}
	done chan struct{}
}

func newSampler(pids []int) *sampler {
	s := &sampler{pids: pids, max: make([]int64, len(pids)), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			s.sampleRSS()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) sampleRSS() {
	for i, pid := range s.pids {
		if ps, err := readProc(pid); err == nil {
			s.mu.Lock()
			s.max[i] = max(s.max[i], ps.rssBytes)
			s.mu.Unlock()
		}
	}
}

// cpu reads every process's CPU seconds now.
func (s *sampler) cpu() []procSample {
	out := make([]procSample, len(s.pids))
	for i, pid := range s.pids {
		out[i], _ = readProc(pid)
	}
	return out
}

// finish stops sampling and returns the largest RSS seen per process.
func (s *sampler) finish() []int64 {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.max...)
}

// goMetrics are the Go runtime figures a streamgate process exports.
type goMetrics struct {
	HeapInuseBytes float64 `json:"heap_inuse_bytes"`
	Goroutines     float64 `json:"goroutines"`
}

// scrapeGoMetrics reads go_memstats_heap_inuse_bytes and go_goroutines from
// a Prometheus text endpoint.
func scrapeGoMetrics(ctx context.Context, url string) (goMetrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return goMetrics{}, fmt.Errorf("cannot scrape %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return goMetrics{}, fmt.Errorf("cannot scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	return parseGoMetrics(resp.Body)
}

func parseGoMetrics(r io.Reader) (goMetrics, error) {
	var m goMetrics
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	found := 0
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		var dst *float64
		switch name {
		case "go_memstats_heap_inuse_bytes":
			dst = &m.HeapInuseBytes
		case "go_goroutines":
			dst = &m.Goroutines
		default:
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return goMetrics{}, fmt.Errorf("cannot parse %s: %w", name, err)
		}
		*dst = v
		found++
	}
	if err := sc.Err(); err != nil {
		return goMetrics{}, fmt.Errorf("cannot read metrics: %w", err)
	}
	if found < 2 {
		return goMetrics{}, fmt.Errorf("cannot find go_memstats_heap_inuse_bytes and go_goroutines in the metrics")
	}
	return m, nil
}

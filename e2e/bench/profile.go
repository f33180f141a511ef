package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// cpuProfiler collects a CPU profile of a streamgate process (started with
// -pprof) over one measured window: start fetches
// /debug/pprof/profile?seconds=N from the process's metrics listener, wait
// writes it to dir, one file per target, point and round. pprof takes
// whole seconds, so a profile covers the window rounded up. The profiler's
// own cost (about 1% at pprof's 100 Hz) lands in the window's CPU figures,
// so compare figures from runs that all profile or none.
type cpuProfiler struct {
	dir string
	log io.Writer
}

// start begins profiling t over d; the returned wait blocks until the
// profile is written, or logs why it could not be. A target without a
// streamgate process (plain Envoy) is not profiled. A nil c profiles
// nothing.
func (c *cpuProfiler) start(ctx context.Context, t *target, p Point, d time.Duration) (wait func()) {
	if c == nil || t.metricsURL == "" {
		return func() {}
	}
	done := make(chan error, 1)
	go func() { done <- c.fetch(ctx, t, p, d) }()
	return func() {
		if err := <-done; err != nil {
			fmt.Fprintf(c.log, "bench: %v\n", err)
		}
	}
}

func (c *cpuProfiler) fetch(ctx context.Context, t *target, p Point, d time.Duration) error {
	secs := max(int(math.Ceil(d.Seconds())), 1)
	url := strings.TrimSuffix(t.metricsURL, "/metrics") + fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("cannot profile (%s): %w", t.ID, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot profile (%s): %w", t.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cannot profile (%s): %s answered %s (was it started with -pprof?)", t.ID, url, resp.Status)
	}
	f, err := c.create(t, p)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("cannot write %s: %w", f.Name(), err)
	}
	return f.Close()
}

// create opens a new file named after the target and point: the first
// round's is d-realistic-c64-1KiB-r1.pprof, the next r2 and so on.
func (c *cpuProfiler) create(t *target, p Point) (*os.File, error) {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", c.dir, err)
	}
	for round := 1; ; round++ {
		name := filepath.Join(c.dir, fmt.Sprintf("%s-%s-c%d-%s-r%d.pprof", t.ID, p.Mode.Name, p.Concurrency, sizeName(p.PromptBytes), round))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cannot create %s: %w", name, err)
		}
		return f, nil
	}
}

package cli

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

const reloadBase = `backends:
  - {name: a, protocol: openai, endpoints: ["127.0.0.1:1"]}
models:
  - {name: m1, backend: a}
`

// TestReloadFailingReloaderAppliesNothing: when one reloader cannot build
// its part of a new config, no part is applied, not even those built
// before it; the failure is counted and the next valid edit applies every
// part.
func TestReloadFailingReloaderAppliesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.yaml")
	require.NoError(t, os.WriteFile(path, []byte(reloadBase), 0o600))
	cfg, err := config.Load(path)
	require.NoError(t, err)

	var mu sync.Mutex
	var applied []string // "first:<models>", "second:<models>"
	record := func(name string, c *config.Config) func() {
		return func() {
			mu.Lock()
			defer mu.Unlock()
			applied = append(applied, name+":"+c.Models[len(c.Models)-1].Name)
		}
	}
	first := func(c *config.Config) (func(), error) { return record("first", c), nil }
	second := func(c *config.Config) (func(), error) {
		if len(c.Models) == 2 {
			return nil, errors.New("cannot build the second part")
		}
		return record("second", c), nil
	}
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		watchConfig(ctx, path, cfg, config.Load, []reloader{first, second}, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitReloads := func(result string, want float64) {
		t.Helper()
		// The watcher polls every 500 ms and acts on content seen twice;
		// ten seconds is ample on a loaded machine. The counter is
		// registered by watchConfig's goroutine: absent reads as not yet.
		deadline := time.Now().Add(drainWaitLimit)
		for {
			v, err := gatherCounter(reg, "streamgate_config_reloads_total", "result", result)
			if err == nil && v == want {
				return
			}
			require.True(t, time.Now().Before(deadline), "no reload %s within %v (%v, %v)", result, drainWaitLimit, v, err)
			time.Sleep(20 * time.Millisecond)
		}
	}

	require.NoError(t, os.WriteFile(path, []byte(reloadBase+"  - {name: m2, backend: a}\n"), 0o600))
	waitReloads("failure", 1)
	mu.Lock()
	assert.Empty(t, applied, "a failed reload applies no part, not even the one built before the failure")
	mu.Unlock()

	require.NoError(t, os.WriteFile(path, []byte(reloadBase+"  - {name: m2, backend: a}\n  - {name: m3, backend: a}\n"), 0o600))
	waitReloads("success", 1)
	mu.Lock()
	assert.Equal(t, []string{"first:m3", "second:m3"}, applied, "a valid edit applies every part, in order")
	mu.Unlock()
}

// gatherCounter reads the counter name{label=value} from g.
func gatherCounter(g prometheus.Gatherer, name, label, value string) (float64, error) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue(), nil
				}
			}
		}
	}
	return 0, errors.New("no " + name + "{" + label + "=" + value + "}")
}

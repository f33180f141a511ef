package config

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const watchBase = `backends:
  - name: a
    protocol: openai
    endpoints: [127.0.0.1:8000]
models:
  - name: m
    backend: a
`

func TestWatcherReloadsValidEditsOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.yaml")
	require.NoError(t, writeAtomic(path, []byte(watchBase), 0o600))
	cfg, err := Load(path)
	require.NoError(t, err)

	loads := make(chan *Config, 4)
	errs := make(chan error, 4)
	trigger := make(chan struct{})
	w := &Watcher{Path: path, Interval: 10 * time.Millisecond, Trigger: trigger,
		OnLoad: func(c *Config) { loads <- c }, OnError: func(e error) { errs <- e }}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go w.Run(ctx, cfg)

	require.NoError(t, writeAtomic(path, []byte(watchBase+"  - name: m2\n    backend: a\n"), 0o600))
	select {
	case c := <-loads:
		assert.Len(t, c.Models, 2)
	case <-time.After(5 * time.Second):
		t.Fatal("no reload after a valid edit")
	}

	require.NoError(t, writeAtomic(path, []byte(watchBase+"  - name: m2\n    backend: nope\n"), 0o600))
	select {
	case e := <-errs:
		require.NotEmpty(t, Problems(e))
		assert.Contains(t, e.Error(), `points at backend "nope"`)
	case <-time.After(5 * time.Second):
		t.Fatal("no error after an invalid edit")
	}

	require.NoError(t, writeAtomic(path, []byte("extproc:\n  listen: 127.0.0.1:1\n"+watchBase), 0o600))
	select {
	case e := <-errs:
		assert.Contains(t, e.Error(), "takes a restart")
	case <-time.After(5 * time.Second):
		t.Fatal("a restart-only change was not refused")
	}

	require.NoError(t, writeAtomic(path, []byte(watchBase), 0o600))
	select {
	case <-loads:
	case <-time.After(5 * time.Second):
		t.Fatal("no reload after reverting to the first config")
	}
	select {
	case trigger <- struct{}{}:
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher did not take the trigger")
	}
	select {
	case c := <-loads:
		assert.Len(t, c.Models, 1, "a trigger reloads even unchanged content")
	case <-time.After(5 * time.Second):
		t.Fatal("trigger did not reload")
	}
}

// writeAtomic replaces path in one step, as editors and ConfigMap updates do.
func writeAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

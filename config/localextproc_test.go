package config

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWithLocalExtProcOnlyReplacesTheDefault(t *testing.T) {
	tests := map[string]struct {
		extproc    string
		wantListen string
		wantEnvoy  string
	}{
		"unset: the socket":                {"", "unix:/run/sg/extproc.sock", "unix:/run/sg/extproc.sock"},
		"listen set: kept":                 {"extproc:\n  listen: 127.0.0.1:50051\n", "127.0.0.1:50051", "127.0.0.1:50051"},
		"listen on a socket: kept":         {"extproc:\n  listen: unix:/tmp/mine.sock\n", "unix:/tmp/mine.sock", "unix:/tmp/mine.sock"},
		"address set: kept":                {"extproc:\n  address: 10.0.0.2:50051\n", DefaultExtProcListen, "10.0.0.2:50051"},
		"only message_timeout set: socket": {"extproc:\n  message_timeout: 3s\n", "unix:/run/sg/extproc.sock", "unix:/run/sg/extproc.sock"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := Parse("s.yaml", []byte(tc.extproc+watchBase))
			require.NoError(t, err)
			before := c.ExtProc.Listen
			got := c.WithLocalExtProc("/run/sg/extproc.sock")
			assert.Equal(t, tc.wantListen, got.ExtProc.Listen)
			assert.Equal(t, tc.wantEnvoy, got.ExtProc.EnvoyAddress())
			assert.Equal(t, before, c.ExtProc.Listen, "the loaded config is not changed")
			assert.Equal(t, got, got.WithLocalExtProc("/elsewhere.sock"), "a chosen socket is not replaced")
		})
	}
}

func TestWatcherLoadKeepsTheChosenSocketAcrossReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.yaml")
	require.NoError(t, writeAtomic(path, []byte(watchBase), 0o600))
	load := func(p string) (*Config, error) {
		c, err := Load(p)
		if err != nil {
			return c, err
		}
		return c.WithLocalExtProc("/run/sg/extproc.sock"), nil
	}
	cfg, err := load(path)
	require.NoError(t, err)
	loads := make(chan *Config, 4)
	errs := make(chan error, 4)
	w := &Watcher{Path: path, Load: load, Interval: 10 * time.Millisecond,
		OnLoad: func(c *Config) { loads <- c }, OnError: func(e error) { errs <- e }}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go w.Run(ctx, cfg)

	// Without Load the reloaded file would be back on the TCP default, a
	// restart-only change, and the edit would be refused.
	require.NoError(t, writeAtomic(path, []byte(watchBase+"  - name: m2\n    backend: a\n"), 0o600))
	select {
	case c := <-loads:
		assert.Len(t, c.Models, 2)
		assert.Equal(t, "unix:/run/sg/extproc.sock", c.ExtProc.Listen)
	case e := <-errs:
		t.Fatalf("reload refused: %v", e)
	case <-time.After(5 * time.Second):
		t.Fatal("no reload after a valid edit")
	}
}

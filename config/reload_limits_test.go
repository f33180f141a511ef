package config

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReloadAcceptsLimitsChanges: everything under limits but the store
// and its Redis connection reloads live, including adding and removing
// the section with the memory store.
func TestReloadAcceptsLimitsChanges(t *testing.T) {
	base := `
backends: [{name: b, protocol: openai, endpoints: ["127.0.0.1:8000"]}]
models: [{name: m, backend: b}]
`
	limited := base + `limits: {queue: {size: 4, max_wait: 1s}, tenants: [{name: t, requests_per_minute: 10, concurrent_streams: 2}]}
`
	redis := base + `limits: {store: redis, redis: {address: "127.0.0.1:6379", fail_open: false}, tenants: [{name: t, requests_per_minute: 10}]}
`
	for name, tc := range map[string]struct {
		old, next string
		refused   string
	}{
		"a tenant's rate":            {old: limited, next: strings.Replace(limited, "requests_per_minute: 10", "requests_per_minute: 20", 1)},
		"a tenant's concurrency cap": {old: limited, next: strings.Replace(limited, "concurrent_streams: 2", "concurrent_streams: 1", 1)},
		"the queue":                  {old: limited, next: strings.Replace(limited, "size: 4, max_wait: 1s", "size: 8, max_wait: 1200ms", 1)},
		"a tenant added":             {old: limited, next: strings.Replace(limited, "tenants: [", "tenants: [{name: u, requests_per_minute: 1}, ", 1)},
		"read_usage":                 {old: limited, next: strings.Replace(limited, "limits: {", "limits: {read_usage: inline, ", 1)},
		"the section added":          {old: base, next: limited},
		"the section removed":        {old: limited, next: base},
		"redis fail_open":            {old: redis, next: strings.Replace(redis, "fail_open: false", "fail_open: true", 1)},
		"redis tenants":              {old: redis, next: strings.Replace(redis, "requests_per_minute: 10", "requests_per_minute: 20", 1)},
		"redis added":                {old: base, next: redis, refused: "limits.store"},
		"redis removed":              {old: redis, next: base, refused: "limits.store"},
		"memory to redis":            {old: limited, next: redis, refused: "limits.store"},
	} {
		t.Run(name, func(t *testing.T) {
			err := reloadable(loadText(t, tc.old), loadText(t, tc.next))
			if tc.refused == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.refused)
		})
	}
}

// TestWatcherNamesStartOnlyChanges: an accepted reload that changes a
// setting read only at start says so, naming it, and still loads.
func TestWatcherNamesStartOnlyChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.yaml")
	require.NoError(t, writeAtomic(path, []byte(watchBase), 0o600))
	cfg, err := Load(path)
	require.NoError(t, err)
	loads := make(chan *Config, 4)
	warns := make(chan string, 8)
	w := &Watcher{Path: path, Interval: 10 * time.Millisecond,
		OnLoad: func(c *Config) { loads <- c }, OnError: func(e error) { t.Error(e) },
		OnStartOnly: func(msg string) { warns <- msg }}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go w.Run(ctx, cfg)

	tracing := "telemetry: {tracing: {endpoint: \"127.0.0.1:4317\"}}\n"
	require.NoError(t, writeAtomic(path, []byte(tracing+watchBase), 0o600))
	select {
	case <-loads:
	case <-time.After(5 * time.Second):
		t.Fatal("no reload after a start-only edit")
	}
	select {
	case msg := <-warns:
		assert.Contains(t, msg, "telemetry.tracing")
		assert.Contains(t, msg, "until a restart")
	default:
		t.Fatal("the start-only change was not reported before the load")
	}

	require.NoError(t, writeAtomic(path, []byte(tracing+"gateway: {drain_timeout: 7s}\n"+watchBase+"  - name: m2\n    backend: a\n"), 0o600))
	select {
	case <-loads:
	case <-time.After(5 * time.Second):
		t.Fatal("no reload after a live edit")
	}
	assert.Empty(t, warns, "an edit that changes no start-only setting (drain_timeout reloads live) reports none")
}

package config

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"time"
)

// Watcher reloads a config file when its content changes or when asked
// (SIGHUP). Polling the content, rather than watching inotify events, sees
// every kind of edit: in place, rename-over, and Kubernetes ConfigMap
// symlink swaps.
type Watcher struct {
	// Path is the file to watch.
	Path string
	// Interval between content checks (default 500 ms).
	Interval time.Duration
	// Trigger forces a reload even when the content is unchanged; may be nil.
	Trigger <-chan struct{}
	// OnLoad receives each new valid config. Called from Run's goroutine only.
	OnLoad func(*Config)
	// OnError receives a failed reload; the previous config stays in force.
	OnError func(error)
	// Load reads the config file (default Load). `streamgate run` wraps
	// Load to keep the ext_proc socket it chose (WithLocalExtProc), so a
	// reload compares like with like.
	Load func(path string) (*Config, error)
	// OnStartOnly, when set, receives each StartOnly setting an accepted
	// reload changed, as a sentence naming it: the running process keeps
	// its old value until a restart. Called before OnLoad.
	OnStartOnly func(msg string)
}

// Run watches until ctx is done. current is the config already serving;
// the content it was parsed from is the baseline, so an edit made between
// loading it and calling Run is not missed.
func (w *Watcher) Run(ctx context.Context, current *Config) {
	interval := w.Interval
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	last := current.digest
	var pending []byte // changed content seen once, loaded once it holds still
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		forced := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.Trigger:
			forced = true
		}
		d := fileDigest(w.Path)
		if !forced {
			if bytes.Equal(d, last) {
				pending = nil
				continue
			}
			// A file being written may be read half done: act only when
			// the new content is the same on two polls in a row.
			if !bytes.Equal(d, pending) {
				pending = d
				continue
			}
		}
		pending = nil
		load := w.Load
		if load == nil {
			load = Load
		}
		next, err := load(w.Path)
		if next != nil {
			d = next.digest
		}
		last = d
		if err == nil {
			err = reloadable(current, next)
		}
		if err != nil {
			w.OnError(err)
			continue
		}
		if w.OnStartOnly != nil {
			for _, msg := range startOnlyChanges(current, next) {
				w.OnStartOnly(msg)
			}
		}
		current = next
		w.OnLoad(next)
	}
}

func fileDigest(path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(data)
	return sum[:]
}

// reloadable refuses changes a running process cannot apply (RestartOnly).
func reloadable(old, next *Config) error {
	if msg := restartChange(old, next); msg != "" {
		return &Problem{File: next.Source, Msg: msg + ", so the running config stays"}
	}
	return nil
}

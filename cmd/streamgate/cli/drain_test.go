package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeAdmin is an Envoy admin that reports active requests counting down
// by one per stats read, and records the POSTs it received.
type fakeAdmin struct {
	active atomic.Int64
	mu     sync.Mutex
	posts  []string
}

func (f *fakeAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		f.mu.Lock()
		f.posts = append(f.posts, r.URL.Path+"?"+r.URL.RawQuery)
		f.mu.Unlock()
		return
	}
	n := f.active.Load()
	if n > 0 {
		f.active.Add(-1)
	}
	fmt.Fprintf(w, `{"stats":[{"name":"http.admin.downstream_rq_active","value":1},{"name":"http.gateway.downstream_rq_active","value":%d}]}`, n)
}

func TestDrainWaitsForEnvoy(t *testing.T) {
	admin := &fakeAdmin{}
	admin.active.Store(3)
	srv := httptest.NewServer(admin)
	defer srv.Close()
	var ready readiness
	ready.set(true)
	d := drainer{log: slog.New(slog.NewTextHandler(io.Discard, nil)), timeout: time.Minute, ready: &ready,
		envoyAdmin: strings.TrimPrefix(srv.URL, "http://")}
	d.drain(context.Background())

	assert.False(t, ready.get(), "/readyz reports not ready")
	assert.Equal(t, int64(0), admin.active.Load(), "drain returned only once Envoy had no open requests")
	admin.mu.Lock()
	defer admin.mu.Unlock()
	assert.Equal(t, []string{"/healthcheck/fail?", "/drain_listeners?graceful&skip_exit"}, admin.posts)
}

func TestDrainStopsAtDeadline(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, `{"stats":[{"name":"http.gateway.downstream_rq_active","value":7}]}`)
		}
	}))
	defer srv.Close()
	var ready readiness
	d := drainer{log: slog.New(slog.NewTextHandler(io.Discard, nil)), timeout: 50 * time.Millisecond, ready: &ready,
		envoyAdmin: strings.TrimPrefix(srv.URL, "http://")}
	done := make(chan struct{})
	go func() { d.drain(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("drain did not give up at its deadline")
	}
}

func TestDrainStopsWhenServersFail(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"stats":[{"name":"http.gateway.downstream_rq_active","value":7}]}`)
	}))
	defer srv.Close()
	var ready readiness
	d := drainer{log: slog.New(slog.NewTextHandler(io.Discard, nil)), timeout: time.Hour, ready: &ready,
		envoyAdmin: strings.TrimPrefix(srv.URL, "http://")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.drain(ctx); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("drain did not stop when its context ended")
	}
	require.False(t, ready.get())
}

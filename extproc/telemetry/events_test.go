package telemetry

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

func startServer(t *testing.T) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
	require.NoError(t, err)
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	require.True(t, ns.ReadyForConnections(10*time.Second))
	return ns
}

func TestSinkPublishes(t *testing.T) {
	ns := startServer(t)
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	sub, err := nc.SubscribeSync("usage.test")
	require.NoError(t, err)
	require.NoError(t, nc.Flush())

	m := NewMetrics(prometheus.NewRegistry())
	s, err := NewSink(&config.NATS{URL: ns.ClientURL(), Subject: "usage.test", Buffer: 8}, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	require.Eventually(t, s.nc.IsConnected, 5*time.Second, 10*time.Millisecond)
	s.Publish(Event{RequestID: "r1", InputTokens: 3})
	msg, err := sub.NextMsg(5 * time.Second)
	require.NoError(t, err)
	var ev Event
	require.NoError(t, json.Unmarshal(msg.Data, &ev))
	assert.Equal(t, "r1", ev.RequestID)
	assert.EqualValues(t, 3, ev.InputTokens)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	s.Close(ctx)
	assert.InDelta(t, 1, testutil.ToFloat64(m.events.WithLabelValues("published")), 0)
	s.Publish(Event{RequestID: "after close"}) // dropped, never blocks or panics
}

func TestSinkDownIsCountedNotFatal(t *testing.T) {
	ns := startServer(t)
	url := ns.ClientURL()
	ns.Shutdown()
	m := NewMetrics(prometheus.NewRegistry())
	s, err := NewSink(&config.NATS{URL: url, Subject: "usage.test", Buffer: 2}, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err, "a sink that is down does not stop the gateway")
	done := make(chan struct{})
	go func() {
		for range 50 {
			s.Publish(Event{RequestID: "x"})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked while the sink is down")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	s.Close(ctx)
	failed := testutil.ToFloat64(m.events.WithLabelValues("failed"))
	dropped := testutil.ToFloat64(m.events.WithLabelValues("dropped"))
	assert.InDelta(t, 50, failed+dropped, 0, "every event is counted as failed or dropped")
	assert.Positive(t, failed)
	assert.Zero(t, testutil.ToFloat64(m.events.WithLabelValues("published")))
}

// TestEventCarriesBudgetWindows: a budgeted request's event names the
// windows it counted in; others carry no budgets member.
func TestEventCarriesBudgetWindows(t *testing.T) {
	start := time.Date(2026, 12, 1, 23, 0, 0, 0, time.UTC)
	r := &Record{RequestID: "r", Tenant: "acme", Start: start, Budgets: []BudgetWindow{
		{Scope: "tenant", Window: "day", Start: start, End: start.Add(24 * time.Hour), Limit: 40, Spent: 32.5, Warning: true},
	}}
	b, err := json.Marshal(EventOf(r))
	require.NoError(t, err)
	assert.Contains(t, string(b), `"budgets":[{"scope":"tenant","window":"day","start":"2026-12-01T23:00:00Z","end":"2026-12-02T23:00:00Z","limit":40,"spent":32.5,"warning":true}]`)
	b, err = json.Marshal(EventOf(&Record{RequestID: "r"}))
	require.NoError(t, err)
	assert.NotContains(t, string(b), "budgets")
}

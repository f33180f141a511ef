package extproc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/extproc/extproctest"
	"github.com/streamgate/streamgate/extproc/picking"
)

const (
	prioCriticalKey  = "sk-unit-prio-critical-0123"
	prioAllowedKey   = "sk-unit-prio-allowed-01234"
	prioPlainKey     = "sk-unit-prio-plain-012345"
	prioSheddableKey = "sk-unit-prio-sheddable-01"
)

// saturationConfig is a backend with picking and saturation thresholds;
// gateway and auth are appended by the tests.
const saturationConfig = `
backends:
  - name: gpu
    protocol: openai
    endpoints: [10.0.0.1:8000, 10.0.0.2:8000]
    picking: {metrics: none, saturation: {queue: 5, max_wait: 150ms}}
models:
  - name: m
    backend: gpu
`

// prioAuth has a tenant per priority policy.
func prioAuth() string {
	return fmt.Sprintf(`auth:
  tenants:
    - {name: ops, models: ["*"], priority: critical, api_keys: [{hash: %s}]}
    - {name: batch, models: ["*"], priority_header: true, api_keys: [{hash: %s}]}
    - {name: web, models: ["*"], api_keys: [{hash: %s}]}
    - {name: bulk, models: ["*"], priority: sheddable, api_keys: [{hash: %s}]}
`, auth.HashKey(prioCriticalKey), auth.HashKey(prioAllowedKey), auth.HashKey(prioPlainKey), auth.HashKey(prioSheddableKey))
}

// saturationServer serves src (saturationConfig plus extra) with picking.
func saturationServer(t *testing.T, extra string) (*Server, *picking.Pool) {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(saturationConfig+extra))
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	pool := picking.NewPool(prometheus.NewRegistry(), log)
	t.Cleanup(pool.Close)
	pool.Update(cfg)
	srv := NewServer(cfg, NewRoutes(cfg, 1), log, nil)
	if cfg.Auth != nil {
		a, err := auth.New(t.Context(), cfg, auth.Options{Log: log})
		require.NoError(t, err)
		srv.SetAuth(a)
	}
	srv.SetPicking(pool)
	return srv, pool
}

// load stores a fresh scrape of waiting requests on every endpoint of gpu.
func load(pool *picking.Pool, waiting float64) {
	for _, e := range pool.Backend("gpu").Endpoints() {
		e.Store(picking.Metrics{Waiting: waiting}, time.Now())
	}
}

// chat runs one chat request with the extra headers and returns its
// answers.
func chat(t *testing.T, srv *Server, headers ...string) []*extprocsvcv3.ProcessingResponse {
	t.Helper()
	st := newStream(t, headers...)
	require.NoError(t, srv.Process(st))
	return st.Sent
}

func TestSaturatedBackendHonoursPriority(t *testing.T) {
	open := ""
	openWithHeader := "gateway: {priority_header: true}\n"
	tests := map[string]struct {
		extra   string
		headers []string
		// status is the refusal; 0 when the request is answered (it
		// waited, found no room and got 503 otherwise).
		status int
		code   string
	}{
		"open gateway ignores the header":           {open, []string{contract.PriorityHeader, "sheddable"}, 503, "backend_saturated"},
		"open gateway with priority_header sheds":   {openWithHeader, []string{contract.PriorityHeader, "sheddable"}, 429, "saturated"},
		"open gateway: bad value from allowed":      {openWithHeader, []string{contract.PriorityHeader, "urgent"}, 400, "invalid_priority"},
		"open gateway: bad value ignored otherwise": {open, []string{contract.PriorityHeader, "urgent"}, 503, "backend_saturated"},
		"allowed tenant sheds by header":            {prioAuth(), []string{"x-api-key", prioAllowedKey, contract.PriorityHeader, "Sheddable "}, 429, "saturated"},
		"tenant without priority_header ignored":    {prioAuth(), []string{"x-api-key", prioPlainKey, contract.PriorityHeader, "sheddable"}, 503, "backend_saturated"},
		"sheddable tenant sheds without a header":   {prioAuth(), []string{"x-api-key", prioSheddableKey}, 429, "saturated"},
		"sheddable tenant cannot raise itself":      {prioAuth(), []string{"x-api-key", prioSheddableKey, contract.PriorityHeader, "critical"}, 429, "saturated"},
		"critical tenant waits":                     {prioAuth(), []string{"x-api-key", prioCriticalKey}, 503, "backend_saturated"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			srv, pool := saturationServer(t, tc.extra)
			load(pool, 9)
			began := time.Now()
			sent := chat(t, srv, tc.headers...)
			took := time.Since(began)
			if tc.status == 400 {
				require.Len(t, sent, 1, "refused at the headers")
				status, body := immediateStatus(t, sent[0])
				assert.Equal(t, 400, status)
				assert.Equal(t, tc.code, body["error"].(map[string]any)["code"])
				return
			}
			require.NotNil(t, sent[0].GetRequestHeaders(), "headers pass")
			if slices.Contains(tc.headers, contract.PriorityHeader) {
				assert.Contains(t, sent[0].GetRequestHeaders().GetResponse().GetHeaderMutation().GetRemoveHeaders(), contract.PriorityHeader, "never sent upstream")
			}
			require.Len(t, sent, 2)
			status, body := immediateStatus(t, sent[1])
			assert.Equal(t, tc.status, status)
			assert.Equal(t, tc.code, body["error"].(map[string]any)["code"])
			assert.Equal(t, "1", refusalHeaders(sent[1])["retry-after"])
			if tc.status == 429 {
				assert.Less(t, took, 100*time.Millisecond, "shed at once")
			} else {
				assert.GreaterOrEqual(t, took, 150*time.Millisecond, "waited saturation.max_wait")
			}
			for addr, n := range inFlight(pool, "gpu") {
				assert.Zero(t, n, "nothing in flight on %s", addr)
			}
			assert.False(t, pool.Backend("gpu").Queued())
		})
	}
}

func TestSaturatedRequestProceedsWhenARequestEndsWithRoom(t *testing.T) {
	srv, pool := saturationServer(t, "extproc: {message_timeout: 5s}\n")
	cfg := *pool.Backend("gpu").Config()
	require.Equal(t, 150*time.Millisecond, cfg.Saturation.MaxWait)
	// A request in flight on the backend, picked before it saturated.
	held := pool.Backend("gpu").Pick(picking.Request{}, time.Now())
	load(pool, 9)
	done := make(chan []*extprocsvcv3.ProcessingResponse, 1)
	go func() {
		st := newStream(t)
		_ = srv.Process(st)
		done <- st.Sent
	}()
	require.Eventually(t, pool.Backend("gpu").Queued, time.Second, time.Millisecond)
	load(pool, 1) // the next scrape shows room...
	held.Done()   // ...and the request in flight ends: the waiter goes
	var sent []*extprocsvcv3.ProcessingResponse
	select {
	case sent = <-done:
	case <-time.After(time.Second):
		t.Fatal("the waiting request was not let go")
	}
	require.Len(t, sent, 2)
	require.NotNil(t, sent[1].GetRequestBody(), "sent upstream, not refused")
	_, picked, reason := lbMetadata(sent[1])
	assert.NotEmpty(t, picked)
	assert.Equal(t, picking.ReasonScore, reason)
}

func TestCanceledWaitingRequestLeavesNothing(t *testing.T) {
	srv, pool := saturationServer(t, "")
	// The tenant's one concurrent stream is held while it waits.
	cfg, err := config.Parse("t.yaml", []byte(saturationConfig+"limits:\n  tenants:\n    - {name: default, concurrent_streams: 1, input_tokens_per_minute: 100000}\n"))
	require.NoError(t, err)
	lim, err := NewLimits(cfg, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	srv.SetLimits(lim)
	load(pool, 9)
	ctx, cancel := context.WithCancel(t.Context())
	st := newStreamCtx(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Process(st) }()
	require.Eventually(t, pool.Backend("gpu").Queued, time.Second, time.Millisecond)
	cancel() // Envoy resets the stream
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("the waiting request outlived its stream")
	}
	assert.False(t, pool.Backend("gpu").Queued())
	for _, n := range inFlight(pool, "gpu") {
		assert.Zero(t, n)
	}
	assert.Zero(t, srv.Active())
	// The slot came back: the tenant's next request is admitted at once.
	load(pool, 0)
	began := time.Now()
	sent := chat(t, srv)
	require.Len(t, sent, 2)
	assert.NotNil(t, sent[1].GetRequestBody(), "admitted and sent")
	assert.Less(t, time.Since(began), 500*time.Millisecond, "no wait for a leaked slot")
}

// newStream is a chat request's ext_proc stream with the extra headers.
func newStream(t *testing.T, headers ...string) *extproctest.Stream {
	return newStreamCtx(t.Context(), headers...)
}

func newStreamCtx(ctx context.Context, headers ...string) *extproctest.Stream {
	return extproctest.NewStream(ctx, reqHeaders("POST", "/v1/chat/completions", false, headers...), bodyMsg(`{"model":"m","messages":[]}`))
}

// refusalHeaders are the headers an immediate response sets.
func refusalHeaders(r *extprocsvcv3.ProcessingResponse) map[string]string {
	return setHeaders(r.GetImmediateResponse().GetHeaders())
}

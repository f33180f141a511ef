package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakellm"
)

// The tests in this file run the picker on what vLLM-like servers report:
// two simulators (examples/fakellm Sim) scraped every 20 ms through real
// Envoy and Streamgate.

// pickingLoadConfig: backend gpu picks from the simulators' vLLM metrics;
// model base is the servers' base model, lora-a one of their adapters.
const pickingLoadConfig = listeners + `backends:
  - name: gpu
    protocol: openai
    endpoints: [ENDPOINTS]
    picking: {metrics: vllm, interval: 20ms, stale_after: 300ms, fallbacks: 1}
models:
  - name: base
    backend: gpu
    upstream_model: fake-model
  - name: lora-a
    backend: gpu
    upstream_model: adapter-a
`

// simServer is a simulator on a loopback port whose /metrics can be made
// to fail.
type simServer struct {
	*fakellm.Sim
	addr        string
	metricsDown atomic.Bool
	srv         *http.Server
}

func startSim(t *testing.T, name string, opts fakellm.SimOptions) *simServer {
	t.Helper()
	opts.Name = name
	sim, err := fakellm.NewSim(opts)
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &simServer{Sim: sim, addr: lis.Addr().String()}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == fakellm.MetricsPath && s.metricsDown.Load() {
			http.Error(w, "metrics down", http.StatusServiceUnavailable)
			return
		}
		sim.ServeHTTP(w, r)
	})}
	go func() { _ = s.srv.Serve(lis) }()
	t.Cleanup(func() { s.srv.Close() })
	return s
}

// pickingLoadGateway starts a gateway picking among sims.
func pickingLoadGateway(t *testing.T, sims ...*simServer) *env {
	t.Helper()
	addrs := make([]string, len(sims))
	for i, s := range sims {
		addrs[i] = s.addr
	}
	g := startGateway(t, strings.Replace(pickingLoadConfig, "ENDPOINTS", strings.Join(addrs, ", "), 1))
	for _, a := range addrs { // every endpoint scraped once
		require.Eventually(t, func() bool {
			_, ok := scrapeSample(t, g, fmt.Sprintf(`streamgate_picking_scrape_age_seconds{backend="gpu",endpoint=%q}`, a))
			return ok
		}, 5*time.Second, 20*time.Millisecond, "no scrape of %s", a)
	}
	return g
}

// simChat sends a non-streaming chat request with messages to base (the
// gateway or a simulator) and returns the serving simulator's name, the
// request id and the cached prompt tokens it reported.
func simChat(t *testing.T, base, model string, messages ...map[string]string) (server, requestID string, cached int) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"model": model, "max_tokens": 4, "messages": messages})
	require.NoError(t, err)
	resp, err := http.Post(base+"/v1/chat/completions", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
	var out struct {
		Usage struct {
			Details struct {
				Cached int `json:"cached_tokens"`
			} `json:"prompt_tokens_details"`
		} `json:"usage"`
	}
	require.NoError(t, json.Unmarshal(raw, &out))
	return resp.Header.Get("x-fakellm-backend"), resp.Header.Get("x-request-id"), out.Usage.Details.Cached
}

func user(text string) map[string]string { return map[string]string{"role": "user", "content": text} }

// TestPickingAvoidsLoadedServer: a server whose queue the metrics show
// full gets no new requests while the other is idle.
func TestPickingAvoidsLoadedServer(t *testing.T) {
	a := startSim(t, "a", fakellm.SimOptions{MaxNumSeqs: 1})
	b := startSim(t, "b", fakellm.SimOptions{MaxNumSeqs: 1})
	g := pickingLoadGateway(t, a, b)

	// Load a directly: one long stream running, two waiting.
	for i := range 3 {
		go func() {
			body, _ := json.Marshal(map[string]any{"model": "fake-model", "max_tokens": 300, "stream": true, "messages": []any{user(fmt.Sprint("load ", i))}})
			req, _ := http.NewRequest(http.MethodPost, "http://"+a.addr+"/v1/chat/completions", bytes.NewReader(body))
			req.Header.Set("x-fakellm-tokens", "300")
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	waiting := fmt.Sprintf(`streamgate_picking_endpoint_waiting{backend="gpu",endpoint=%q}`, a.addr)
	require.Eventually(t, func() bool { v, _ := scrapeSample(t, g, waiting); return v >= 2 }, 5*time.Second, 20*time.Millisecond)

	for i := range 4 {
		server, id, _ := simChat(t, g.gateway, "base", user(fmt.Sprint("question ", i)))
		assert.Equal(t, "b", server, "request %d went to the loaded server", i)
		line := accessLine(t, g, id)
		assert.Equal(t, b.addr, line["picked_endpoint"])
		assert.Equal(t, "score", line["pick_reason"])
	}
}

// TestPickingFollowsPrefix: requests sharing a long system prompt stay on
// the server that cached it, where equal idle servers would otherwise take
// turns, and that server reports the prompt's tokens as cached.
func TestPickingFollowsPrefix(t *testing.T) {
	a, b := startSim(t, "a", fakellm.SimOptions{}), startSim(t, "b", fakellm.SimOptions{})
	g := pickingLoadGateway(t, a, b)
	system := map[string]string{"role": "system", "content": strings.Repeat("You are a careful assistant for the fleet. ", 200)}
	first, _, _ := simChat(t, g.gateway, "base", system, user("first question"))
	reasons := map[string]int{}
	for i := range 4 {
		server, id, cached := simChat(t, g.gateway, "base", system, user(fmt.Sprint("follow-up ", i)))
		assert.Equal(t, first, server, "request %d left the server holding its prefix", i)
		assert.Greater(t, cached, 1000, "the server found the system prompt cached")
		reasons[accessLine(t, g, id)["pick_reason"].(string)]++
	}
	// Equal idle servers take turns: in the turns that were not the
	// holder's, the prefix decided.
	assert.Positive(t, reasons["prefix"], "reasons %v", reasons)

	picks := 0.0
	for _, e := range []*simServer{a, b} {
		for _, r := range []string{"score", "prefix"} {
			v, _ := scrapeSample(t, g, fmt.Sprintf(`streamgate_picking_picks_total{backend="gpu",endpoint=%q,reason=%q}`, e.addr, r))
			picks += v
		}
	}
	assert.Equal(t, 5.0, picks, "every pick counted by endpoint and reason")

	// The dashboard's picking panels read what this gateway exports.
	assert.Equal(t, 5, checkDashboard(t, scrape(t, g), func(m string) bool {
		return strings.HasPrefix(m, pickingMetricPrefix) && !isSaturationMetric(m)
	}))
}

// TestPickingFollowsAdapter: a request for an adapter goes to the server
// running it (vLLM lists the adapters of running and waiting requests),
// though that server is busier than the idle one.
func TestPickingFollowsAdapter(t *testing.T) {
	opts := fakellm.SimOptions{LoRAs: []string{"adapter-a"}, MaxLoRAs: 1}
	a, b := startSim(t, "a", opts), startSim(t, "b", opts)
	g := pickingLoadGateway(t, a, b)
	go func() { // a long adapter-a stream on b, sent to b directly
		body, _ := json.Marshal(map[string]any{"model": "adapter-a", "stream": true, "messages": []any{user("hold the adapter")}})
		req, _ := http.NewRequest(http.MethodPost, "http://"+b.addr+"/v1/chat/completions", bytes.NewReader(body))
		req.Header.Set("x-fakellm-tokens", "300")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	running := fmt.Sprintf(`streamgate_picking_endpoint_running{backend="gpu",endpoint=%q}`, b.addr)
	require.Eventually(t, func() bool { v, _ := scrapeSample(t, g, running); return v >= 1 }, 5*time.Second, 20*time.Millisecond)

	reasons := map[string]int{}
	for i := range 4 {
		server, id, _ := simChat(t, g.gateway, "lora-a", user(fmt.Sprint("adapter question ", i)))
		assert.Equal(t, "b", server, "request %d missed the server running the adapter", i)
		reasons[accessLine(t, g, id)["pick_reason"].(string)]++
	}
	// Equal queues take turns: in the turns that were not b's, the
	// adapter decided.
	assert.Positive(t, reasons["lora"], "reasons %v", reasons)
}

// TestPickingWhenMetricsGoStaleOrServerDies: a server whose metrics stop
// answering falls behind the fresh one; with every server stale the picker
// falls back to in-flight counts; a dead server is never tried first once
// its metrics are stale, so no request pays a retry.
func TestPickingWhenMetricsGoStaleOrServerDies(t *testing.T) {
	a, b := startSim(t, "a", fakellm.SimOptions{}), startSim(t, "b", fakellm.SimOptions{})
	g := pickingLoadGateway(t, a, b)

	a.metricsDown.Store(true)
	time.Sleep(400 * time.Millisecond) // past stale_after
	for i := range 4 {
		server, id, _ := simChat(t, g.gateway, "base", user(fmt.Sprint("a stale ", i)))
		assert.Equal(t, "b", server, "request %d went to the stale server", i)
		assert.Equal(t, "score", accessLine(t, g, id)["pick_reason"])
	}

	b.metricsDown.Store(true)
	time.Sleep(400 * time.Millisecond)
	seen := map[string]bool{}
	for i := range 4 {
		server, id, _ := simChat(t, g.gateway, "base", user(fmt.Sprint("all stale ", i)))
		seen[server] = true
		assert.Equal(t, "in_flight", accessLine(t, g, id)["pick_reason"])
	}
	assert.Len(t, seen, 2, "without metrics idle servers take turns")

	b.metricsDown.Store(false)
	a.srv.Close() // a dies; its scrapes fail from now on
	time.Sleep(400 * time.Millisecond)
	for i := range 4 {
		server, id, _ := simChat(t, g.gateway, "base", user(fmt.Sprint("a dead ", i)))
		assert.Equal(t, "b", server)
		line := accessLine(t, g, id)
		assert.Equal(t, b.addr, line["picked_endpoint"], "the dead server is picked first")
		assert.EqualValues(t, 1, line["attempts"], "no retry paid")
	}
	errs := fmt.Sprintf(`streamgate_picking_scrape_errors_total{backend="gpu",endpoint=%q,reason="connect"}`, a.addr)
	assert.Positive(t, metric(t, g, errs))
}

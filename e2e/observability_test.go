package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// obsConfig is a gateway with limits (a one-stream tenant to make a
// queue), prices and usage events to NATS (NATSURL is filled in first).
const obsConfig = listeners + twoBackends + `models:
  - name: model-a
    backend: backend-a
    upstream_model: upstream-a
  - name: model-b
    backend: backend-b
limits:
  tenant_header: x-tenant
  queue: {size: 100, max_wait: 1s}
  tenants:
    - name: solo
      concurrent_streams: 1
    - name: "*"
      total_tokens_per_minute: 10000000
telemetry:
  usage: true
  prices:
    model-a: {input_per_million: 3, output_per_million: 15}
    model-b: {input_per_million: 0.5, output_per_million: 1.5}
  nats: {url: NATSURL, subject: streamgate.usage, jetstream: true}
`

// obsSecret and obsPrompt must appear in no log line and no usage event.
const (
	obsSecret = "sk-obs-credential-0123456789"
	obsPrompt = "observability prompt text that must stay private"
)

// startNATS runs an embedded NATS server with JetStream and a stream
// capturing the usage subject.
func startNATS(t *testing.T) (string, jetstream.Stream) {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	require.NoError(t, err)
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	require.True(t, ns.ReadyForConnections(10*time.Second), "nats-server did not start")
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	st, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "USAGE", Subjects: []string{"streamgate.usage"}})
	require.NoError(t, err)
	return ns.ClientURL(), st
}

// obsRequest is one request of the workload and what the backend reported.
type obsRequest struct {
	id, path, model, tenant string
	stream, clientUsage     bool
	tokens                  int
	wantStatus              int
	requestID               string
	usage                   usageJSON
}

func (r *obsRequest) body() []byte {
	if r.path == "/v1/embeddings" {
		b, _ := json.Marshal(map[string]any{"model": r.model, "input": obsPrompt})
		return b
	}
	m := map[string]any{"model": r.model, "stream": r.stream, "messages": []map[string]string{{"role": "user", "content": obsPrompt}}}
	if r.clientUsage {
		m["stream_options"] = map[string]any{"include_usage": true}
	}
	b, _ := json.Marshal(m)
	return b
}

func (r *obsRequest) send(t *testing.T, e *env) {
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.gateway+r.path, strings.NewReader(string(r.body())))
	require.NoError(t, err)
	req.Header.Set("content-type", "application/json")
	req.Header.Set("authorization", "Bearer "+obsSecret)
	req.Header.Set("x-tenant", r.tenant)
	req.Header.Set("x-e2e-tap", r.id)
	req.Header.Set("x-fakellm-tokens", strconv.Itoa(r.tokens))
	req.Header.Set("x-fakellm-itl-ms", "2")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, r.wantStatus, resp.StatusCode, "%s: %s", r.id, got)
	r.requestID = resp.Header.Get("x-request-id")
	require.NotEmpty(t, r.requestID)
	if r.stream && !r.clientUsage {
		assert.NotContains(t, string(got), `"usage":{`, "%s: the usage chunk the gateway asked for is stripped", r.id)
	}
}

// backendUsage reads the usage the backend reported for a tapped request.
func backendUsage(t *testing.T, raw []byte) usageJSON {
	t.Helper()
	s := string(raw)
	if strings.HasPrefix(s, "data:") {
		return lastUsage(t, s)
	}
	var b struct{ Usage usageJSON }
	require.NoError(t, json.Unmarshal(raw, &b), "%s", raw)
	require.Positive(t, b.Usage.PromptTokens)
	return b.Usage
}

// scrapeFamilies parses the gateway's /metrics.
func scrapeFamilies(t *testing.T, e *env) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(e.metrics + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// sumWhere adds up a family's samples (counter/gauge value, histogram sum
// or count) whose labels include every pair in match.
func sumWhere(fams map[string]*dto.MetricFamily, name, field string, match map[string]string) float64 {
	var total float64
	f := fams[name]
	if f == nil {
		return 0
	}
next:
	for _, m := range f.GetMetric() {
		for k, v := range match {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Histogram != nil && field == "count":
			total += float64(m.GetHistogram().GetSampleCount())
		case m.Histogram != nil:
			total += m.GetHistogram().GetSampleSum()
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		}
	}
	return total
}

func TestObservability(t *testing.T) {
	url, stream := startNATS(t)
	e := startGateway(t, strings.Replace(obsConfig, "NATSURL", url, 1))

	reqs := []*obsRequest{
		{id: "obs-s1", path: "/v1/chat/completions", model: "model-a", tenant: "acme", stream: true, tokens: 3},
		{id: "obs-s2", path: "/v1/chat/completions", model: "model-a", tenant: "acme", stream: true, tokens: 8},
		{id: "obs-s3", path: "/v1/chat/completions", model: "model-b", tenant: "beta", stream: true, tokens: 5, clientUsage: true},
		{id: "obs-q1", path: "/v1/chat/completions", model: "model-a", tenant: "solo", stream: true, tokens: 20},
		{id: "obs-q2", path: "/v1/chat/completions", model: "model-a", tenant: "solo", stream: true, tokens: 20},
		{id: "obs-q3", path: "/v1/chat/completions", model: "model-a", tenant: "solo", stream: true, tokens: 20},
		{id: "obs-j1", path: "/v1/chat/completions", model: "model-b", tenant: "acme", tokens: 6},
		{id: "obs-e1", path: "/v1/embeddings", model: "model-b", tenant: "acme"},
	}
	var wg sync.WaitGroup
	for _, r := range reqs {
		r.wantStatus = http.StatusOK
		wg.Go(func() { r.send(t, e) })
	}
	wg.Wait()
	bad := &obsRequest{id: "obs-404", path: "/v1/chat/completions", model: "no-such-model", tenant: "acme", wantStatus: http.StatusNotFound}
	bad.send(t, e)
	require.False(t, t.Failed())

	var wantIn, wantOut, wantCostA, wantCostB float64
	completions := 0
	for _, r := range reqs {
		b := e.backendA
		if r.model == "model-b" {
			b = e.backendB
		}
		r.usage = backendUsage(t, b.tap.bytes(r.id))
		wantIn += r.usage.PromptTokens
		wantOut += r.usage.CompletionTokens
		price := map[string][2]float64{"model-a": {3, 15}, "model-b": {0.5, 1.5}}[r.model]
		cost := (r.usage.PromptTokens*price[0] + r.usage.CompletionTokens*price[1]) / 1e6
		if r.model == "model-a" {
			wantCostA += cost
		} else {
			wantCostB += cost
		}
		if r.path != "/v1/embeddings" {
			completions++
		}
	}

	// The metrics are recorded when each ext_proc stream closes, just
	// after the client has its last byte.
	var fams map[string]*dto.MetricFamily
	require.Eventually(t, func() bool {
		fams = scrapeFamilies(t, e)
		return sumWhere(fams, "gen_ai_server_request_duration_seconds", "count", nil) == float64(len(reqs)+1) &&
			sumWhere(fams, "streamgate_extproc_streams_open", "", nil) == 0
	}, 5*time.Second, 20*time.Millisecond, "every request is observed and no stream stays active")

	in := map[string]string{"gen_ai_token_type": "input"}
	out := map[string]string{"gen_ai_token_type": "output"}
	assert.InDelta(t, wantIn, sumWhere(fams, "gen_ai_client_token_usage", "sum", in), 0, "input tokens equal the backend's usage")
	assert.InDelta(t, wantOut, sumWhere(fams, "gen_ai_client_token_usage", "sum", out), 0, "output tokens equal the backend's usage")
	assert.InDelta(t, float64(len(reqs)), sumWhere(fams, "gen_ai_client_token_usage", "count", in), 0)
	assert.InDelta(t, float64(completions), sumWhere(fams, "gen_ai_client_token_usage", "count", out), 0, "embeddings have no output tokens")
	assert.InDelta(t, float64(completions), sumWhere(fams, "gen_ai_server_time_to_first_token_seconds", "count", nil), 0, "one TTFT per completion")
	assert.InDelta(t, 6, sumWhere(fams, "gen_ai_server_time_per_output_token_seconds", "count", nil), 0, "one per stream")
	assert.InDelta(t, 1, sumWhere(fams, "gen_ai_server_request_duration_seconds", "count",
		map[string]string{"error_type": "model_not_found", "gen_ai_request_model": "other", "gen_ai_operation_name": "chat"}), 0)
	assert.InDelta(t, 1, sumWhere(fams, "gen_ai_server_request_duration_seconds", "count",
		map[string]string{"gen_ai_operation_name": "embeddings", "gen_ai_provider_name": "openai", "gen_ai_response_model": "model-b"}), 0)
	assert.InDelta(t, 5, sumWhere(fams, "gen_ai_server_time_to_first_token_seconds", "count",
		map[string]string{"gen_ai_request_model": "model-a", "gen_ai_response_model": "upstream-a", "streamgate_backend": "backend-a"}), 0)
	assert.InDelta(t, wantCostA, sumWhere(fams, "streamgate_cost_usd_total", "", map[string]string{"model": "model-a"}), 1e-12)
	assert.InDelta(t, wantCostB, sumWhere(fams, "streamgate_cost_usd_total", "", map[string]string{"model": "model-b"}), 1e-12)
	assert.InDelta(t, 3, sumWhere(fams, "streamgate_requests_total", "", map[string]string{"tenant": "solo", "model": "model-a", "backend": "backend-a", "status": "200"}), 0)
	// acme is not named in the config: its header value does not become a label.
	assert.InDelta(t, 1, sumWhere(fams, "streamgate_requests_total", "", map[string]string{"tenant": "other", "status": "404", "model": "other"}), 0)
	assert.Zero(t, sumWhere(fams, "streamgate_requests_total", "", map[string]string{"tenant": "acme"}))
	assert.InDelta(t, float64(len(reqs)), sumWhere(fams, "streamgate_ratelimit_decisions_total", "", map[string]string{"decision": "admitted"}), 0)
	assert.InDelta(t, float64(len(reqs)), sumWhere(fams, "streamgate_queue_wait_seconds", "count", nil), 0)
	assert.Positive(t, sumWhere(fams, "streamgate_queue_wait_seconds", "sum", nil), "solo's later streams waited for its one slot")
	// The responses ext_proc read itself: the embeddings one (Envoy reads
	// chat and messages only) and solo's, which hold its one slot and so
	// stay on the main stream (TestUsageReportSeesStatus pins the others'
	// two messages).
	assert.Positive(t, sumWhere(fams, "streamgate_extproc_phase_duration_seconds", "count", map[string]string{"phase": "response_body"}))
	assert.InDelta(t, 0, sumWhere(fams, "streamgate_queue_depth", "", nil), 0)
	assert.InDelta(t, 0, sumWhere(fams, "streamgate_reservations_outstanding", "", nil), 0)

	// Access log: one line per request carrying the backend's usage.
	lines := map[string]map[string]any{}
	for _, r := range append(reqs, bad) {
		line := accessLine(t, e, r.requestID)
		lines[r.requestID] = line
		if r == bad {
			continue
		}
		assert.InDelta(t, r.usage.PromptTokens, line["input_tokens"], 0, "%s input_tokens", r.id)
		assert.InDelta(t, r.usage.CompletionTokens, line["output_tokens"], 0, "%s output_tokens", r.id)
		assert.Equal(t, "admitted", line["limit_decision"], r.id)
		if r.path != "/v1/embeddings" {
			assert.Positive(t, line["ttft_ms"], r.id)
		}
	}

	// Usage events: one per request, matching its access log line.
	cons, err := stream.OrderedConsumer(t.Context(), jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	events := map[string]map[string]any{}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(time.Second))
		require.NoError(t, err)
		n := 0
		for msg := range batch.Messages() {
			n++
			assert.NotContains(t, string(msg.Data()), obsSecret)
			assert.NotContains(t, string(msg.Data()), obsPrompt)
			var ev map[string]any
			require.NoError(t, json.Unmarshal(msg.Data(), &ev))
			id, _ := ev["request_id"].(string)
			assert.NotContains(t, events, id, "one event per request")
			events[id] = ev
		}
		if n == 0 && len(events) >= len(lines) {
			break
		}
	}
	// Besides the workload, the harness's readiness probes (GET /v1/models)
	// were requests too: every event has its access log line.
	for id := range events {
		if lines[id] == nil {
			lines[id] = accessLine(t, e, id)
		}
	}
	require.Len(t, events, len(lines), "one usage event per access log line")
	for id, line := range lines {
		ev := events[id]
		require.NotNil(t, ev, "usage event for %s", id)
		for _, k := range []string{"tenant", "endpoint", "model", "upstream_model", "backend", "version"} {
			if line[k] != nil {
				assert.Equal(t, line[k], ev[k], "%s %s", id, k)
			}
		}
		assert.EqualValues(t, line["status"], ev["status"], id)
		if line["input_tokens"] != nil {
			assert.Equal(t, line["input_tokens"], ev["input_tokens"], id)
			assert.Equal(t, line["output_tokens"], ev["output_tokens"], id)
			assert.InDelta(t, line["cost_usd"], ev["cost_usd"], 1e-12, id)
		}
	}
	assert.InDelta(t, float64(len(lines)), sumWhere(scrapeFamilies(t, e), "streamgate_usage_events_total", "", map[string]string{"outcome": "published"}), 0)

	assertDashboardMetrics(t, scrapeFamilies(t, e))

	// Nothing logged carries the credential or the prompt.
	logs := e.logs.String()
	assert.NotContains(t, logs, obsSecret)
	assert.NotContains(t, logs, obsPrompt)
	assert.NotContains(t, logs, fmt.Sprintf("%q", obsPrompt))
}

// dashboardMetric finds the metric names in a PromQL expression once
// label matchers, grouping clauses and label_values' label are removed.
var (
	dashboardMetric = regexp.MustCompile(`\b(?:gen_ai|streamgate)_[a-zA-Z0-9_]+`)
	promLabelParts  = regexp.MustCompile(`\{[^}]*\}|\b(?:by|without)\s*\([^)]*\)`)
	promLabelValues = regexp.MustCompile(`label_values\(([^,]+),[^)]*\)`)
)

// assertDashboardMetrics checks that every metric the example Grafana
// dashboard queries has samples in fams (a /metrics scrape after a workload).
func assertDashboardMetrics(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	raw, err := os.ReadFile("../examples/grafana/dashboards/streamgate.json")
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Type    string
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct{ List []struct{ Query any } }
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	var exprs []string
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue // a row only groups the panels below it
		}
		require.NotEmpty(t, p.Targets, "panel %q queries something", p.Title)
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if s, ok := v.Query.(string); ok {
			exprs = append(exprs, s)
		}
	}
	seen := map[string]bool{}
	for _, expr := range exprs {
		bare := promLabelParts.ReplaceAllString(promLabelValues.ReplaceAllString(expr, "$1"), "")
		for _, name := range dashboardMetric.FindAllString(bare, -1) {
			if strings.HasPrefix(name, pickingMetricPrefix) {
				continue // series only with a picking backend: TestPickingFollowsPrefix
			}
			if strings.HasPrefix(name, bridgeMetricPrefix) {
				continue // series only where the bridge runs: TestBridgeNATSExactlyOnce
			}
			family := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(name, suffix); ok && fams[base].GetType() == dto.MetricType_HISTOGRAM {
					family = base
				}
			}
			seen[family] = true
			f := fams[family]
			if assert.NotNil(t, f, "dashboard queries %s (in %q), absent from /metrics", name, expr) {
				assert.NotEmpty(t, f.GetMetric(), "%s has no samples", family)
			}
		}
	}
	assert.GreaterOrEqual(t, len(seen), 13, "the dashboard covers the metrics: %v", seen)
}

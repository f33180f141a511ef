package e2e

import (
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

// saturationConfig serves model sat from backend gpu, whose endpoints
// report vLLM metrics every 20ms and are full at 5 waiting requests; an open
// gateway whose clients may set their priority by header.
const saturationConfig = `backends:
  - name: gpu
    protocol: openai
    endpoints: [ENDPOINTS]
    picking:
      metrics: vllm
      interval: 20ms
      stale_after: 2s
      saturation: {queue: 5, max_wait: 1s}
models:
  - name: sat
    backend: gpu
`

// meteredServer is a fakellm whose /metrics reports a vLLM queue the test
// sets.
type meteredServer struct {
	addr    string
	waiting atomic.Int64
}

func startMetered(t *testing.T, name string, waiting int64) *meteredServer {
	t.Helper()
	m := &meteredServer{}
	m.waiting.Store(waiting)
	llm := fakellm.New(fakellm.Options{Name: name})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	m.addr = lis.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			fmt.Fprintf(w, "vllm:num_requests_waiting %d\nvllm:num_requests_running 4\nvllm:kv_cache_usage_perc 0.5\n", m.waiting.Load())
			return
		}
		llm.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Close() })
	return m
}

// satAnswer is one finished request to model sat.
type satAnswer struct {
	status     int
	retryAfter string
	code       string
	took       time.Duration
	at         time.Time // when the answer arrived
}

func satRequest(t *testing.T, g *env, priority string) satAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, g.gateway+"/v1/chat/completions", strings.NewReader(string(chatBody("sat", false, "hello"))))
	require.NoError(t, err)
	req.Header.Set("content-type", "application/json")
	if priority != "" {
		req.Header.Set("x-streamgate-priority", priority)
	}
	began := time.Now()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	a := satAnswer{status: resp.StatusCode, retryAfter: resp.Header.Get("retry-after"), took: time.Since(began), at: time.Now()}
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil {
		a.code = e.Error.Code
	}
	return a
}

// TestSaturatedBackendQueuesStandardAndShedsSheddable: while every
// endpoint reports a full queue, a sheddable request gets 429 with
// Retry-After at once, a standard one waits and is served once a scrape
// shows room, and a standard one that finds no room within max_wait gets
// 503 with Retry-After.
func TestSaturatedBackendQueuesStandardAndShedsSheddable(t *testing.T) {
	e1, e2 := startMetered(t, "e1", 9), startMetered(t, "e2", 7)
	cfg := strings.Replace(listeners, "gateway:\n", "gateway:\n  priority_header: true\n", 1) +
		strings.Replace(saturationConfig, "ENDPOINTS", e1.addr+", "+e2.addr, 1)
	g := startGateway(t, cfg)

	// Once both endpoints are scraped, sheddable traffic is refused at once.
	var shed satAnswer
	require.Eventually(t, func() bool {
		shed = satRequest(t, g, "sheddable")
		return shed.status == http.StatusTooManyRequests
	}, 10*time.Second, 50*time.Millisecond, "sheddable requests are shed once the scrapes show saturation")
	assert.Equal(t, "saturated", shed.code)
	assert.Equal(t, "1", shed.retryAfter)
	assert.Less(t, shed.took, 500*time.Millisecond, "shed without waiting")

	// No room within max_wait: 503 with Retry-After.
	timedOut := satRequest(t, g, "")
	assert.Equal(t, http.StatusServiceUnavailable, timedOut.status)
	assert.Equal(t, "backend_saturated", timedOut.code)
	assert.Equal(t, "1", timedOut.retryAfter)
	assert.GreaterOrEqual(t, timedOut.took, time.Second, "waited max_wait")

	// Room appears while a standard request waits: it is served then.
	done := make(chan satAnswer, 1)
	go func() { done <- satRequest(t, g, "standard") }()
	time.Sleep(300 * time.Millisecond)
	roomAt := time.Now()
	e2.waiting.Store(0)
	a := <-done
	assert.Equal(t, http.StatusOK, a.status, "served once a scrape shows room")
	assert.True(t, a.at.After(roomAt), "answered only after the metrics showed room (took %s)", a.took)
	assert.Less(t, a.took, time.Second+300*time.Millisecond)

	resp, err := http.Get(g.metrics + "/metrics")
	require.NoError(t, err)
	exported, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(exported), `streamgate_picking_shed_total{backend="gpu",reason="sheddable"}`)
	assert.Contains(t, string(exported), `streamgate_picking_shed_total{backend="gpu",reason="max_wait"} 1`)
	assert.Contains(t, string(exported), `streamgate_picking_waiting{backend="gpu",priority="standard"} 0`)
	// The dashboard's saturation panel reads what this gateway exports.
	assert.Equal(t, 2, checkDashboard(t, string(exported), isSaturationMetric))
}

// isSaturationMetric names the picking metrics that have series only once
// a backend has been saturated.
func isSaturationMetric(m string) bool {
	return m == "streamgate_picking_waiting" || m == "streamgate_picking_shed_total"
}

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakellm"
)

var limitsConfig = twoModels("15s") + `limits:
  tenant_header: x-tenant
  queue: {size: 100, max_wait: 10s}
  tokenizers: [{model: model-a, encoding: o200k_base}]
  tenants:
    - name: solo
      concurrent_streams: 1
    - name: solo-metered
      concurrent_streams: 1
      total_tokens_per_minute: 10000000
    - name: tiny
      requests_per_minute: 2
    - name: "*"
      total_tokens_per_minute: 10000000
  backends:
    - {name: backend-a, max_in_flight: 3}
`

// countingBackend is a fakellm server that records how many requests it
// serves at once.
type countingBackend struct {
	*backend
	inFlight, peak atomic.Int64
}

func startCountingBackend(t testing.TB) *countingBackend {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cb := &countingBackend{backend: &backend{Server: fakellm.New(fakellm.Options{Name: "counted"}), url: "http://" + lis.Addr().String(), tap: &tap{}}}
	h := cb.tap.wrap(cb.Server)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := cb.inFlight.Add(1)
		defer cb.inFlight.Add(-1)
		for p := cb.peak.Load(); n > p && !cb.peak.CompareAndSwap(p, n); p = cb.peak.Load() {
		}
		h.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return cb
}

// limitsGateway starts a gateway with limitsConfig in front of a counting backend.
func limitsGateway(t testing.TB) (*env, *countingBackend) {
	t.Helper()
	cb := startCountingBackend(t)
	e := &env{logs: &syncBuffer{}, done: make(chan error, 1), backendA: cb.backend, backendB: gw.backendB}
	err := e.start(limitsConfig)
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			t.Logf("---- gateway logs ----\n%s", e.logs.String())
		}
	})
	require.NoError(t, err)
	return e, cb
}

func postTo(ctx context.Context, e *env, body []byte, headers map[string]string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.gateway+"/v1/chat/completions", strings.NewReader(string(body)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("content-type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return http.DefaultClient.Do(req)
}

// metric scrapes one unlabelled (or fully labelled) sample from the
// gateway. A sample that is absent fails the test, so a renamed or never
// registered metric cannot pass a "back to 0" check.
func metric(t *testing.T, e *env, name string) float64 {
	t.Helper()
	v, ok := scrapeSample(t, e, name)
	if !ok {
		t.Fatalf("metric %s is not exposed by the gateway", name)
	}
	return v
}

// scrapeSample reads the sample name from the gateway's /metrics.
func scrapeSample(t *testing.T, e *env, name string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(e.metrics + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f, true
		}
	}
	require.NoError(t, sc.Err())
	return 0, false
}

// waitMetric waits until the sample name reads want, failing the test
// (with the last value) when 5 s pass first: a reservation is released
// within milliseconds of its stream's end on a loaded machine.
func waitMetric(t *testing.T, e *env, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for metric(t, e, name) != want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	assert.InDelta(t, want, metric(t, e, name), 0, name)
}

func TestLimits(t *testing.T) {
	e, cb := limitsGateway(t)

	t.Run("backend never sees more than K streams", func(t *testing.T) {
		const k, n = 3, 9
		var wg sync.WaitGroup
		codes := make([]int, n)
		for i := range n {
			wg.Go(func() {
				resp, err := postTo(t.Context(), e, chatBody("model-a", true, "hi"), map[string]string{
					"x-tenant": fmt.Sprintf("t%d", i%3), "x-fakellm-tokens": "8", "x-fakellm-itl-ms": "25",
				})
				if !assert.NoError(t, err) {
					return
				}
				defer resp.Body.Close()
				codes[i] = resp.StatusCode
				_, _ = io.Copy(io.Discard, resp.Body)
			})
		}
		wg.Wait()
		for i, c := range codes {
			assert.Equal(t, http.StatusOK, c, "request %d", i)
		}
		assert.Equal(t, int64(k), cb.peak.Load(), "the backend must see exactly K at the peak")
		waitMetric(t, e, "streamgate_reservations_outstanding", 0)
	})

	t.Run("a light tenant waits one slot turn behind a flood", func(t *testing.T) {
		const heavy = 12 // four waves of K=3 streams of ~300 ms
		stream := map[string]string{"x-tenant": "heavy", "x-fakellm-tokens": "10", "x-fakellm-itl-ms": "30"}
		queuedBefore := metric(t, e, "streamgate_queue_depth")
		floodStart := time.Now()
		var wg sync.WaitGroup
		for range heavy {
			wg.Go(func() {
				resp, err := postTo(t.Context(), e, chatBody("model-a", true, "flood"), stream)
				if assert.NoError(t, err) {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
		// Event-driven: the flood fills backend-a's 3 slots and queues the
		// rest; wait until at least two waves (6) are queued, so the light
		// request surely arrives behind a queue (all 9 may never be seen at
		// once if the first wave ends before the last heavy request lands).
		deadline := time.Now().Add(5 * time.Second)
		for metric(t, e, "streamgate_queue_depth") < queuedBefore+6 {
			require.True(t, time.Now().Before(deadline), "the flood was not queued within 5 s")
			time.Sleep(5 * time.Millisecond)
		}
		start := time.Now()
		resp, err := postTo(t.Context(), e, chatBody("model-a", false, "light"), map[string]string{"x-tenant": "light"})
		require.NoError(t, err)
		resp.Body.Close()
		waited := time.Since(start)
		wg.Wait()
		flood := time.Since(floodStart)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		t.Logf("light tenant answered after %v behind %d heavy streams that took %v", waited, heavy, flood)
		// Ratio, not a fixed time: load stretches the flood and the wait
		// alike. Served at the next slot turn it waits about one wave (a
		// quarter of the flood); behind the flood it would wait all of it.
		assert.Less(t, waited, flood/2, "served at the next slot turn, not after the flood")
	})

	// A client that leaves mid-stream frees its slot at once, whether its
	// reservation holds no token bucket (tenant solo) or holds one whose
	// usage the gateway asked for (solo-metered): Envoy's usage report of
	// the cut stream settles it. (The main-stream disconnect path, where
	// Envoy resets the ext_proc stream, is read_usage: inline's, pinned by
	// extproc's TestMainStreamClientGoneFreesReservation.)
	for name, tenant := range map[string]string{"no token bucket": "solo", "usage asked by the gateway": "solo-metered"} {
		t.Run("a disconnect frees the slot within a second: "+name, func(t *testing.T) {
			disconnectFreesSlot(t, e, tenant)
		})
	}

	t.Run("rate limit answers 429 with headers; allowed responses carry them too", func(t *testing.T) {
		var remaining []string
		for range 2 {
			resp, err := postTo(t.Context(), e, chatBody("model-b", false, "x"), map[string]string{"x-tenant": "tiny"})
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, "2", resp.Header.Get("x-ratelimit-limit-requests"))
			assert.NotEmpty(t, resp.Header.Get("x-ratelimit-reset-requests"))
			remaining = append(remaining, resp.Header.Get("x-ratelimit-remaining-requests"))
		}
		assert.Equal(t, []string{"1", "0"}, remaining)
		resp, err := postTo(t.Context(), e, chatBody("model-b", false, "x"), map[string]string{"x-tenant": "tiny"})
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		ra, err := strconv.Atoi(resp.Header.Get("retry-after"))
		require.NoError(t, err)
		assert.InDelta(t, 30, ra, 1, "one request refills every 30 s")
		assert.Equal(t, "0", resp.Header.Get("x-ratelimit-remaining-requests"))
		var body struct {
			Error struct{ Message, Type, Code string }
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		assert.Equal(t, "rate_limit_exceeded", body.Error.Code)
		assert.Contains(t, body.Error.Message, "requests per minute")
	})

	t.Run("reconciled usage equals the backend's and the client gets only what it asked", func(t *testing.T) {
		// Earlier subtests' reports settle up to a flush interval after
		// their responses: count from when none is outstanding.
		waitMetric(t, e, "streamgate_reservations_outstanding", 0)
		beforeIn := metric(t, e, `streamgate_tokens_reconciled_total{direction="input"}`)
		beforeOut := metric(t, e, `streamgate_tokens_reconciled_total{direction="output"}`)
		var wantIn, wantOut float64
		// 1: streaming without include_usage: the gateway asks for usage and hides it.
		resp, err := postTo(t.Context(), e, chatBody("model-a", true, "count these words please"), map[string]string{"x-e2e-tap": "lim-strip", "x-fakellm-tokens": "7"})
		require.NoError(t, err)
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.NotContains(t, string(got), `"usage":{`, "the client did not ask for usage")
		assert.Contains(t, string(got), "data: [DONE]")
		sent := string(cb.tap.bytes("lim-strip"))
		u := lastUsage(t, sent)
		wantIn, wantOut = wantIn+u.PromptTokens, wantOut+u.CompletionTokens
		require.Contains(t, sent, `"usage":null`, "the backend marks every chunk once include_usage is on")
		assert.NotContains(t, string(got), `"usage"`, "no usage field at all reaches a client that did not ask")
		want := strings.ReplaceAll(strings.Replace(sent, usageEvent(t, sent), "", 1), `,"usage":null`, "")
		assert.Equal(t, want, string(got), "everything else passes byte for byte")
		// 2: streaming with include_usage: passed through.
		b, _ := json.Marshal(map[string]any{"model": "model-a", "stream": true, "stream_options": map[string]bool{"include_usage": true},
			"messages": []map[string]string{{"role": "user", "content": "and these"}}})
		resp, err = postTo(t.Context(), e, b, map[string]string{"x-fakellm-tokens": "5"})
		require.NoError(t, err)
		got, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		u = lastUsage(t, string(got))
		wantIn, wantOut = wantIn+u.PromptTokens, wantOut+u.CompletionTokens
		// 3: non-streaming.
		resp, err = postTo(t.Context(), e, chatBody("model-a", false, "one more"), map[string]string{"x-fakellm-tokens": "3"})
		require.NoError(t, err)
		var nb struct{ Usage usageJSON }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&nb))
		resp.Body.Close()
		wantIn, wantOut = wantIn+nb.Usage.PromptTokens, wantOut+nb.Usage.CompletionTokens
		waitMetric(t, e, "streamgate_reservations_outstanding", 0)
		assert.InDelta(t, wantIn, metric(t, e, `streamgate_tokens_reconciled_total{direction="input"}`)-beforeIn, 0)
		assert.InDelta(t, wantOut, metric(t, e, `streamgate_tokens_reconciled_total{direction="output"}`)-beforeOut, 0)
	})
}

// disconnectFreesSlot holds tenant's only concurrency slot with a long
// stream, queues a second request behind it, disconnects the first client
// and checks the second is answered within a second and no reservation is
// left outstanding.
func disconnectFreesSlot(t *testing.T, e *env, tenant string) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	long := map[string]string{"x-tenant": tenant, "x-fakellm-tokens": "200", "x-fakellm-itl-ms": "50"}
	resp, err := postTo(ctx, e, chatBody("model-b", true, "hold"), long)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	_, err = newSSEReader(resp.Body).next()
	require.NoError(t, err)
	type result struct {
		code int
		at   time.Time
	}
	got := make(chan result, 1)
	queuedBefore := metric(t, e, "streamgate_queue_depth")
	go func() {
		r, err := postTo(t.Context(), e, chatBody("model-b", false, "next"), map[string]string{"x-tenant": tenant})
		if err != nil {
			got <- result{}
			return
		}
		r.Body.Close()
		got <- result{r.StatusCode, time.Now()}
	}()
	// Event-driven: the second request is in the limiter's queue.
	waitMetric(t, e, "streamgate_queue_depth", queuedBefore+1)
	select {
	case r := <-got:
		t.Fatalf("second request finished (status %d) while the first held the only slot", r.code)
	default:
	}
	cancelled := time.Now()
	cancel()
	resp.Body.Close()
	var r result
	select {
	case r = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the queued request was not answered within 10 s of the disconnect")
	}
	require.Equal(t, http.StatusOK, r.code)
	// The cut stream's report settles its reservation (so later subtests
	// count only their own tokens).
	waitMetric(t, e, "streamgate_reservations_outstanding", 0)
	waited := r.at.Sub(cancelled)
	t.Logf("slot freed and next request answered %v after the disconnect", waited)
	// The release itself takes milliseconds; a second leaves room for a
	// loaded machine while staying far below the 10 s the held stream
	// would otherwise last (200 tokens 50 ms apart).
	assert.Less(t, waited, time.Second)
	waitMetric(t, e, "streamgate_reservations_outstanding", 0)
}

type usageJSON struct {
	PromptTokens     float64 `json:"prompt_tokens"`
	CompletionTokens float64 `json:"completion_tokens"`
}

// usageEvent returns the SSE event of stream that carries usage.
func usageEvent(t *testing.T, stream string) string {
	t.Helper()
	for _, ev := range strings.SplitAfter(stream, "\n\n") {
		if strings.Contains(ev, `"usage":{`) {
			return ev
		}
	}
	t.Fatalf("no usage event in %q", stream)
	return ""
}

func lastUsage(t *testing.T, stream string) usageJSON {
	t.Helper()
	ev := strings.TrimSpace(strings.TrimPrefix(usageEvent(t, stream), "data: "))
	var c struct{ Usage usageJSON }
	require.NoError(t, json.Unmarshal([]byte(ev), &c))
	require.Positive(t, c.Usage.PromptTokens)
	return c.Usage
}

// TestUsageReportSeesStatus: a limited stream holding no slot (model-b's
// backend caps nothing, the default tenant no streams) is handed over to
// Envoy's usage report (its ext_proc stream ends with the body answer: two messages
// from Envoy, none for the response): its status still reaches the metrics,
// from the report, and the reservation is settled with the backend's usage.
func TestUsageReportSeesStatus(t *testing.T) {
	e, _ := limitsGateway(t)
	count := func(status string) float64 {
		resp, err := http.Get(e.metrics + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		var sum float64
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "streamgate_requests_total{") && strings.Contains(line, `model="model-b"`) && strings.Contains(line, `status="`+status+`"`) {
				_, v, _ := strings.Cut(line, "} ")
				f, err := strconv.ParseFloat(v, 64)
				require.NoError(t, err)
				sum += f
			}
		}
		return sum
	}
	before200, beforeRouted := count("200"), count("routed")
	beforeOut := metric(t, e, `streamgate_tokens_reconciled_total{direction="output"}`)
	beforeMsgs := envoyStat(t, e, "ext_proc.stream_msgs_sent")
	b, _ := json.Marshal(map[string]any{"model": "model-b", "stream": true, "stream_options": map[string]bool{"include_usage": true},
		"messages": []map[string]string{{"role": "user", "content": "tap me"}}})
	resp, err := postTo(t.Context(), e, b, map[string]string{"x-fakellm-tokens": "9"})
	require.NoError(t, err)
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	u := lastUsage(t, string(got))
	waitMetric(t, e, "streamgate_reservations_outstanding", 0)
	assert.InDelta(t, u.CompletionTokens, metric(t, e, `streamgate_tokens_reconciled_total{direction="output"}`)-beforeOut, 0)
	assert.Eventually(t, func() bool { return count("200") == before200+1 }, 5*time.Second, 20*time.Millisecond, "the reported request is counted with its status")
	assert.InDelta(t, beforeRouted, count("routed"), 0)
	assert.InDelta(t, 2, envoyStat(t, e, "ext_proc.stream_msgs_sent")-beforeMsgs, 0, "request headers and body only: no message for the response")
}

// envoyStat reads the Envoy counter whose name ends with suffix.
func envoyStat(t *testing.T, e *env, suffix string) float64 {
	t.Helper()
	body := get(t, e.admin+"/stats?filter="+suffix+"$")
	_, v, ok := strings.Cut(strings.TrimSpace(body), ": ")
	require.True(t, ok, "no stat %s in %q", suffix, body)
	f, err := strconv.ParseFloat(v, 64)
	require.NoError(t, err)
	return f
}

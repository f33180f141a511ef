package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// idleTTFT keeps held streams waiting for their first token for the whole
// measurement.
const idleTTFT = 10 * time.Minute

// IdleResult is the memory a configuration spends on open streams that wait
// for their first token.
type IdleResult struct {
	Target  string `json:"target"`
	Streams int    `json:"streams"`
	// Resident sets before the streams opened and while all were held.
	EnvoyRSSBase int64 `json:"envoy_rss_base_bytes"`
	EnvoyRSSHeld int64 `json:"envoy_rss_held_bytes"`
	SGRSSBase    int64 `json:"streamgate_rss_base_bytes,omitempty"`
	SGRSSHeld    int64 `json:"streamgate_rss_held_bytes,omitempty"`
	// Per-stream deltas, bytes.
	EnvoyPerStream float64 `json:"envoy_bytes_per_stream"`
	SGPerStream    float64 `json:"streamgate_bytes_per_stream,omitempty"`
	// Go runtime view of streamgate (heap in use, goroutines) per stream.
	SGHeapPerStream       float64 `json:"streamgate_heap_bytes_per_stream,omitempty"`
	SGGoroutinesPerStream float64 `json:"streamgate_goroutines_per_stream,omitempty"`
	// GatewayPerStream is Envoy + streamgate; RatioToB compares it with (b).
	GatewayPerStream float64 `json:"gateway_bytes_per_stream"`
	RatioToB         float64 `json:"ratio_to_b,omitempty"`
	Error            string  `json:"error,omitempty"`
}

// idleSpec says how to run the open-streams measurement.
type idleSpec struct {
	streams int
	settle  time.Duration
	apiKey  string
}

// measureIdle warms the target up, reads its processes, opens spec.streams
// streams that wait on the backend, reads the processes again and closes
// the streams.
func measureIdle(ctx context.Context, t *target, b *backend, spec idleSpec) *IdleResult {
	res := &IdleResult{Target: t.ID, Streams: spec.streams}
	if err := warm(ctx, t, spec.apiKey); err != nil {
		res.Error = err.Error()
		return res
	}
	time.Sleep(spec.settle)
	base := readAll(t)
	baseGo, baseGoErr := scrapeIfAny(ctx, t)

	hctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	tr := &http.Transport{MaxIdleConnsPerHost: spec.streams, DisableCompression: true}
	client := &http.Client{Transport: tr}
	body := chatBody(1<<10, t.AsksUsage)
	for range spec.streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(hctx, http.MethodPost, t.url+"/v1/chat/completions", bytes.NewReader(body))
			setHeaders(req.Header, t, spec.apiKey, Mode{Name: "idle", TTFT: idleTTFT}, 1)
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	defer func() {
		cancel()
		wg.Wait()
		tr.CloseIdleConnections()
		waitActive(b, 0, 30*time.Second)
	}()
	if !waitActive(b, int64(spec.streams), 60*time.Second) {
		res.Error = fmt.Sprintf("%v: %d of %d open", errNotReady, b.active.Load(), spec.streams)
		return res
	}
	time.Sleep(spec.settle)
	held := readAll(t)
	heldGo, heldGoErr := scrapeIfAny(ctx, t)

	n := float64(spec.streams)
	if t.envoyPID > 0 {
		res.EnvoyRSSBase, res.EnvoyRSSHeld = base[t.envoyPID].rssBytes, held[t.envoyPID].rssBytes
		res.EnvoyPerStream = float64(res.EnvoyRSSHeld-res.EnvoyRSSBase) / n
	}
	if t.sgPID > 0 {
		res.SGRSSBase, res.SGRSSHeld = base[t.sgPID].rssBytes, held[t.sgPID].rssBytes
		res.SGPerStream = float64(res.SGRSSHeld-res.SGRSSBase) / n
		if baseGoErr == nil && heldGoErr == nil {
			res.SGHeapPerStream = (heldGo.HeapInuseBytes - baseGo.HeapInuseBytes) / n
			res.SGGoroutinesPerStream = (heldGo.Goroutines - baseGo.Goroutines) / n
		}
	}
	res.GatewayPerStream = res.EnvoyPerStream + res.SGPerStream
	return res
}

// warm sends a few sequential streams so lazy setup (connections, pools)
// is not counted as per-stream memory.
func warm(ctx context.Context, t *target, apiKey string) error {
	spec := &loadSpec{target: t, point: Point{Mode: ZeroDelay, Concurrency: 1, PromptBytes: 1 << 10}, tokens: 4, apiKey: apiKey}
	w := &worker{client: http.DefaultClient, spec: spec, body: chatBody(1<<10, t.AsksUsage), reader: newReader()}
	for range 20 {
		w.stream(ctx, time.Time{})
	}
	if w.errs > 0 {
		return fmt.Errorf("cannot warm %s up: %d errors, first: %s", t.ID, w.errs, w.errMsgs[0])
	}
	return nil
}

func readAll(t *target) map[int]procSample {
	out := map[int]procSample{}
	for _, pid := range t.pids() {
		out[pid], _ = readProc(pid)
	}
	return out
}

func scrapeIfAny(ctx context.Context, t *target) (goMetrics, error) {
	if t.metricsURL == "" {
		return goMetrics{}, fmt.Errorf("no metrics")
	}
	return scrapeGoMetrics(ctx, t.metricsURL)
}

// waitActive waits until the backend serves exactly n requests.
func waitActive(b *backend, n int64, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for b.active.Load() != n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

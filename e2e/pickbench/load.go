package pickbench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamgate/streamgate/e2e/bench"
)

// phaseSpec is one measured run of a workload on one arm.
type phaseSpec struct {
	url      string
	gen      *generator
	rate     float64 // arrivals per real second
	seed     uint64
	warmup   time.Duration
	duration time.Duration
	drain    time.Duration
	// atWindow is called as the measured window opens (true) and closes
	// (false); runPhase returns after both calls.
	atWindow func(open bool)
}

// phaseLoad is what the client saw of one phase.
type phaseLoad struct {
	window     time.Duration
	sent       int // requests started in the window
	completed  int // of those, finished with [DONE]
	shed       int // 429 or 503
	errors     int
	unfinished int   // still running when the drain ended
	tokens     int64 // content tokens received inside the window
	ttft       []time.Duration
	servers    map[string]int
	samples    []string
}

// runPhase sends spec.gen's requests at Poisson arrival times (open loop:
// a slow answer never delays the next arrival) for warmup+duration, then
// waits up to drain for the requests still running.
func runPhase(ctx context.Context, spec phaseSpec) *phaseLoad {
	tr := &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, DisableCompression: true, IdleConnTimeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	start := time.Now()
	ws, we := start.Add(spec.warmup), start.Add(spec.warmup+spec.duration)
	hard, cancel := context.WithDeadline(ctx, we.Add(spec.drain))
	defer cancel()

	res := &phaseLoad{window: spec.duration, servers: map[string]int{}}
	var mu sync.Mutex
	var tokens atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(time.Until(ws))
		if spec.atWindow != nil {
			spec.atWindow(true)
		}
		time.Sleep(time.Until(we))
		if spec.atWindow != nil {
			spec.atWindow(false)
		}
	}()
	rng := rand.New(rand.NewPCG(spec.seed, 0xa771))
	at := start
	for {
		at = at.Add(time.Duration(rng.ExpFloat64() / spec.rate * float64(time.Second)))
		if !at.Before(we) || !sleepUntil(hard, at) {
			break
		}
		t := spec.gen.take()
		counted := !at.Before(ws)
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := doStream(hard, client, spec.url, t.body, ws, we, &tokens)
			spec.gen.done(t, o.reply, o.err == nil && !o.cut)
			if !counted {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			res.sent++
			switch {
			case o.cut:
				res.unfinished++
			case o.status == http.StatusTooManyRequests || o.status == http.StatusServiceUnavailable:
				res.shed++
			case o.err != nil:
				res.errors++
				if len(res.samples) < 5 {
					res.samples = append(res.samples, o.err.Error())
				}
			default:
				res.completed++
				res.ttft = append(res.ttft, o.ttft)
				res.servers[o.server]++
			}
		}()
	}
	wg.Wait()
	res.tokens = tokens.Load()
	return res
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

// outcome is one request's result.
type outcome struct {
	status int
	ttft   time.Duration
	server string // the simulator that answered (x-fakellm-backend)
	reply  string
	cut    bool // ended by the end of the drain
	err    error
}

// chunk is the part of a chat completion chunk the client reads.
type chunk struct {
	Choices []struct {
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
	} `json:"choices"`
}

// doStream sends one streaming chat completion and reads it to the end,
// counting content tokens that arrive inside [ws, we] into tokens.
func doStream(ctx context.Context, client *http.Client, url string, body []byte, ws, we time.Time, tokens *atomic.Int64) outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		return outcome{err: fmt.Errorf("cannot build request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+apiKey)
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return outcome{cut: ctx.Err() != nil, err: err}
	}
	defer resp.Body.Close()
	o := outcome{status: resp.StatusCode, server: resp.Header.Get("x-fakellm-backend")}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		o.err = fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
		return o
	}
	var reply strings.Builder
	n := 0
	done, err := bench.ReadEvents(bufio.NewReaderSize(resp.Body, 16<<10), func(payload []byte, token bool) {
		if !token {
			return
		}
		now := time.Now()
		if n == 0 {
			o.ttft = now.Sub(start)
		}
		n++
		if !now.Before(ws) && !now.After(we) {
			tokens.Add(1)
		}
		var c chunk
		if json.Unmarshal(payload, &c) == nil && len(c.Choices) > 0 {
			reply.WriteString(c.Choices[0].Delta.Content)
		}
	})
	o.reply = reply.String()
	switch {
	case ctx.Err() != nil:
		o.cut = true
		o.err = ctx.Err()
	case err != nil:
		o.err = fmt.Errorf("cannot read stream: %w", err)
	case !done:
		o.err = errors.New("stream ended without [DONE]")
	case n == 0:
		o.err = errors.New("stream carried no content")
	}
	return o
}

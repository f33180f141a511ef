package fakellm_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakellm"
)

// startSim serves a simulator built from opts on a real loopback server.
func startSim(t *testing.T, opts fakellm.SimOptions) (*fakellm.Sim, string) {
	t.Helper()
	s, err := fakellm.NewSim(opts)
	require.NoError(t, err)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL
}

// simResult is what a client measured of one streamed chat completion.
type simResult struct {
	ttft, total  time.Duration // measured by the client
	tokens       int
	promptTokens int
	cachedTokens int
	// queue, prefill and simTTFT are what the simulator planned, from its
	// x-fakellm-sim-* headers.
	queue, prefill, simTTFT time.Duration
}

// micros parses a microseconds header.
func micros(h http.Header, name string) time.Duration {
	v, _ := strconv.ParseInt(h.Get(name), 10, 64)
	return time.Duration(v) * time.Microsecond
}

// longPrompt returns a prompt of n bytes, distinct per seed.
func longPrompt(seed string, n int) string {
	return strings.Repeat(seed+" lorem ipsum dolor sit amet ", n/(len(seed)+27)+1)[:n]
}

// simChat streams one chat completion of prompt (as the system message) and
// output tokens, with usage, and measures it.
func simChat(ctx context.Context, url, model, prompt string, output int) (simResult, error) {
	body, err := json.Marshal(map[string]any{
		"model": model, "stream": true, "stream_options": map[string]bool{"include_usage": true},
		"max_tokens": output,
		"messages":   []map[string]string{{"role": "system", "content": prompt}, {"role": "user", "content": "hi"}},
	})
	if err != nil {
		return simResult{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", strings.NewReader(string(body)))
	if err != nil {
		return simResult{}, err
	}
	req.Header.Set(fakellm.HeaderTokens, "100000")
	begin := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return simResult{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return simResult{}, fmt.Errorf("status %d", resp.StatusCode)
	}
	res := simResult{
		queue:   micros(resp.Header, fakellm.HeaderSimQueue),
		prefill: micros(resp.Header, fakellm.HeaderSimPrefill),
		simTTFT: micros(resp.Header, fakellm.HeaderSimTTFT),
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var chunk struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
			Usage *struct {
				PromptTokens int `json:"prompt_tokens"`
				Details      struct {
					CachedTokens int `json:"cached_tokens"`
				} `json:"prompt_tokens_details"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			return simResult{}, err
		}
		if len(chunk.Choices) > 0 && chunk.Choices[0].Delta.Content != "" {
			if res.tokens == 0 {
				res.ttft = time.Since(begin)
			}
			res.tokens++
		}
		if chunk.Usage != nil {
			res.promptTokens = chunk.Usage.PromptTokens
			res.cachedTokens = chunk.Usage.Details.CachedTokens
		}
	}
	res.total = time.Since(begin)
	return res, sc.Err()
}

// mustChat is simChat failing the test on error.
func mustChat(t *testing.T, url, model, prompt string, output int) simResult {
	t.Helper()
	res, err := simChat(t.Context(), url, model, prompt, output)
	require.NoError(t, err)
	require.Equal(t, output, res.tokens)
	return res
}

// eventually polls cond every millisecond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 5*time.Second, time.Millisecond, what)
}

func TestSimPrefixReuseCutsPrefillAndReportsCachedTokens(t *testing.T) {
	// 40 kB ≈ 10k tokens = 1 s of prefill at 0.1 ms/token, 100 ms at speed 10.
	s, url := startSim(t, fakellm.SimOptions{Speed: 10, LoRAs: []string{"sql"}})
	prompt := longPrompt("shared", 40000)

	first := mustChat(t, url, "fake-model", prompt, 2)
	assert.Equal(t, 10004, first.promptTokens, `len("system\n" + prompt + "\nuser\nhi\n") / 4`)
	assert.Zero(t, first.cachedTokens)
	assert.InDelta(t, 100*time.Millisecond, first.prefill, float64(time.Millisecond), "10004 tokens × 0.1 ms / 10")
	assert.GreaterOrEqual(t, first.ttft, first.simTTFT, "the client waits at least the planned TTFT")
	st := s.State()
	assert.Zero(t, st.PrefixHits)
	assert.EqualValues(t, 10004, st.PrefixQueries)

	second := mustChat(t, url, "fake-model", prompt, 2)
	assert.Equal(t, 10000, second.cachedTokens, "625 full blocks of 16 tokens")
	assert.Less(t, second.prefill, first.prefill/100, "only the 4 uncached tokens are computed")
	assert.Less(t, second.simTTFT, first.simTTFT/10, "cached prompt blocks are nearly free")
	st = s.State()
	assert.EqualValues(t, 10000, st.PrefixHits)
	assert.EqualValues(t, 2*10004, st.PrefixQueries)

	// The same prompt for an adapter is another cache key, as in vLLM.
	adapter := mustChat(t, url, "sql", prompt, 2)
	assert.Zero(t, adapter.cachedTokens)
}

func TestSimQueuesWhenSlotsAreFull(t *testing.T) {
	s, url := startSim(t, fakellm.SimOptions{Speed: 10, MaxNumSeqs: 2})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = simChat(ctx, url, "fake-model", fmt.Sprintf("prompt %d", i), 1000)
		}()
	}
	eventually(t, "two requests wait behind two running", func() bool {
		st := s.State()
		return st.Running == 2 && st.Waiting == 2
	})
	families := scrape(t, url)
	assert.Equal(t, 2.0, families[fakellm.MetricNumRequestsWaiting].GetMetric()[0].GetGauge().GetValue())
	assert.Equal(t, 2.0, families[fakellm.MetricNumRequestsRunning].GetMetric()[0].GetGauge().GetValue())
	cancel()
	wg.Wait()
	eventually(t, "everything released", func() bool {
		st := s.State()
		return st.Running == 0 && st.Waiting == 0 && st.KVUsage == 0
	})
}

func TestSimServesQueuedRequestsInArrivalOrder(t *testing.T) {
	s, url := startSim(t, fakellm.SimOptions{Speed: 10, MaxNumSeqs: 1})
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := simChat(t.Context(), url, "fake-model", "p", 200); err == nil {
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
			}
		}()
		want := i + 1
		eventually(t, "request queued", func() bool { st := s.State(); return st.Running+st.Waiting == want })
	}
	wg.Wait()
	assert.Equal(t, []int{0, 1, 2}, order)
}

func TestSimDecodeSlowsAsTheBatchGrows(t *testing.T) {
	// Alone: (10+10) ms / 5 = 4 ms per token; with 7 others: (10+80) / 5 = 18 ms.
	// Only lower bounds are asserted on the wall clock: a loaded machine
	// can only stretch sleeps. The exact formula is TestSimDecodeStep.
	opts := fakellm.SimOptions{Speed: 5, DecodeBase: 10 * time.Millisecond, DecodePerSeq: 10 * time.Millisecond}
	s, url := startSim(t, opts)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	for i := range 7 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = simChat(ctx, url, "fake-model", fmt.Sprintf("busy %d", i), 100000)
		}()
	}
	eventually(t, "seven running", func() bool { return s.State().Running == 7 })
	busy := mustChat(t, url, "fake-model", "busy", 20)
	cancel()
	wg.Wait()

	busyITL := (busy.total - busy.ttft) / 19
	assert.GreaterOrEqual(t, busyITL, 17*time.Millisecond, "a batch of 8 steps at 18 ms, not the 4 ms of one alone")
}

func TestSimLoRALoadIsPaidOnceThenEvictedLRU(t *testing.T) {
	// 1 s of load at speed 10: 100 ms.
	s, url := startSim(t, fakellm.SimOptions{Speed: 10, LoRAs: []string{"sql", "chat", "code"},
		MaxLoRAs: 2, LoRALoad: time.Second})
	first := mustChat(t, url, "sql", "q", 2)
	second := mustChat(t, url, "sql", "q2", 2)
	assert.GreaterOrEqual(t, first.simTTFT, 100*time.Millisecond, "the first request loads the adapter")
	assert.GreaterOrEqual(t, first.ttft, 100*time.Millisecond)
	assert.Less(t, second.simTTFT, 10*time.Millisecond, "the adapter stays loaded")
	base := mustChat(t, url, "fake-model", "q3", 2)
	assert.Less(t, base.simTTFT, 10*time.Millisecond, "the base model needs no adapter")
	assert.EqualValues(t, 1, s.State().LoRALoads)

	mustChat(t, url, "chat", "q4", 1) // two slots: sql and chat loaded
	mustChat(t, url, "sql", "q5", 1)  // sql used last, chat is the LRU
	mustChat(t, url, "code", "q6", 1) // unloads chat
	st := s.State()
	assert.Equal(t, []string{"code", "sql"}, st.LoadedLoRAs)
	assert.EqualValues(t, 3, st.LoRALoads)
}

func TestSimLoRAWaitsForAFreeSlot(t *testing.T) {
	s, url := startSim(t, fakellm.SimOptions{Speed: 10, LoRAs: []string{"a", "b"}, MaxLoRAs: 1})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _, _ = simChat(ctx, url, "a", "x", 100000) }()
	eventually(t, "a running", func() bool { return s.State().Running == 1 })
	go func() { _, _ = simChat(ctx, url, "b", "y", 1) }()
	eventually(t, "b waits for the only adapter slot", func() bool {
		st := s.State()
		return st.Waiting == 1 && len(st.WaitingLoRAs) == 1
	})
	info := scrape(t, url)[fakellm.MetricLoRARequestsInfo].GetMetric()[0]
	assert.Equal(t, map[string]string{"running_lora_adapters": "a", "waiting_lora_adapters": "b", "max_lora": "1"}, labels(info))
	assert.InDelta(t, float64(time.Now().Unix()), info.GetGauge().GetValue(), 5, "the value is the scrape time")
	// The base model needs no slot: it is not stuck behind b.
	mustChat(t, url, "fake-model", "z", 1)
	cancel()
	eventually(t, "idle", func() bool { st := s.State(); return st.Running == 0 && st.Waiting == 0 })
}

func TestSimEvictsLeastRecentlyUsedPrefix(t *testing.T) {
	// Each prompt is 64 full blocks (4112 bytes = 1028 tokens); 140 blocks
	// hold two prompts, and a third evicts most of the least recent one,
	// its tail first.
	s, url := startSim(t, fakellm.SimOptions{Speed: 100, KVBlocks: 140})
	a, b, c := longPrompt("aaaa", 4096), longPrompt("bbbb", 4096), longPrompt("cccc", 4096)
	mustChat(t, url, "m", a, 1)
	mustChat(t, url, "m", b, 1)
	assert.Equal(t, 1024, mustChat(t, url, "m", a, 1).cachedTokens, "a is still cached; b is now the LRU")
	assert.Zero(t, mustChat(t, url, "m", c, 1).cachedTokens)
	assert.Equal(t, 1024, mustChat(t, url, "m", a, 1).cachedTokens, "a survived c")
	lost := mustChat(t, url, "m", b, 1).cachedTokens
	assert.Less(t, lost, 1024/2, "b lost most of its blocks to c")
	assert.Positive(t, lost, "b's head blocks outlive its tail")
	assert.LessOrEqual(t, s.State().CachedBlocks, 140)
}

func TestSimNeverEvictsPinnedBlocks(t *testing.T) {
	// 100 blocks: a running request pins ~66; a second prompt of ~66 blocks
	// must wait for it rather than evict its blocks.
	s, url := startSim(t, fakellm.SimOptions{Speed: 10, KVBlocks: 100})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); _, _ = simChat(ctx, url, "m", longPrompt("pinned", 4096), 100000) }()
	eventually(t, "pinned running", func() bool { return s.State().Running == 1 })
	second := make(chan simResult, 1)
	go func() { res, _ := simChat(t.Context(), url, "m", longPrompt("other", 4096), 1); second <- res }()
	eventually(t, "the second request waits for blocks", func() bool { return s.State().Waiting == 1 })
	assert.Greater(t, s.State().KVUsage, 0.6)
	cancel()
	<-done
	select {
	case res := <-second:
		assert.Equal(t, 1, res.tokens)
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting request never ran after the pinned one ended")
	}
}

func TestSimDisconnectFreesSlotAndBlocksAtOnce(t *testing.T) {
	s, url := startSim(t, fakellm.SimOptions{MaxNumSeqs: 1})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _, _ = simChat(ctx, url, "m", longPrompt("gone", 4096), 100000) }()
	eventually(t, "running", func() bool { return s.State().Running == 1 })
	waitCtx, waitCancel := context.WithCancel(t.Context())
	go func() { _, _ = simChat(waitCtx, url, "m", "queued", 1) }()
	eventually(t, "queued", func() bool { return s.State().Waiting == 1 })

	waitCancel()
	eventually(t, "a waiting request that leaves frees its queue place", func() bool { return s.State().Waiting == 0 })
	cancel()
	<-done
	eventually(t, "the slot and blocks are free", func() bool {
		st := s.State()
		return st.Running == 0 && st.KVUsage == 0
	})
	assert.GreaterOrEqual(t, s.Stats().Cancelled, int64(2))
	mustChat(t, url, "m", "next", 1)
}

func TestSimDisconnectDuringPrefillGivesBackTheGPU(t *testing.T) {
	// 40 kB ≈ 10k tokens: 1 s of prefill; the next request must not wait it out.
	s, url := startSim(t, fakellm.SimOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _, _ = simChat(ctx, url, "m", longPrompt("abandoned", 40000), 1) }()
	eventually(t, "prefilling", func() bool { return s.State().Running == 1 })
	cancel()
	<-done
	eventually(t, "released", func() bool { return s.State().Running == 0 })
	next := mustChat(t, url, "m", "short", 1)
	assert.Less(t, next.simTTFT, 100*time.Millisecond, "the abandoned prefill's remaining second is not booked")
}

func TestSimNonStreamingUsageCarriesCachedTokens(t *testing.T) {
	_, url := startSim(t, fakellm.SimOptions{Speed: 100})
	body := map[string]any{"model": "m", "max_tokens": 3,
		"messages": []map[string]string{{"role": "user", "content": longPrompt("x", 2000)}}}
	var got [2]struct {
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
			Details      struct {
				CachedTokens int `json:"cached_tokens"`
			} `json:"prompt_tokens_details"`
		} `json:"usage"`
	}
	for i := range got {
		resp := post(t, url, "/v1/chat/completions", body, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.NoError(t, json.Unmarshal(readAll(t, resp), &got[i]))
	}
	assert.Equal(t, 501, got[0].Usage.PromptTokens, `len("user\n" + content + "\n") / 4`)
	assert.Zero(t, got[0].Usage.Details.CachedTokens)
	assert.Equal(t, 496, got[1].Usage.Details.CachedTokens, "31 full blocks of 16")
}

func TestSimRefusesPromptsLargerThanTheCache(t *testing.T) {
	s, url := startSim(t, fakellm.SimOptions{KVBlocks: 4})
	resp := post(t, url, "/v1/completions", map[string]any{"model": "m", "prompt": longPrompt("x", 1000)}, nil)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, string(readAll(t, resp)), "maximum context length is 64 tokens")
	assert.Zero(t, s.State().Waiting)
}

func TestSimSlownessAndSpeedScaleTime(t *testing.T) {
	prompt := longPrompt("p", 8000) // 2000 tokens: 200 ms of prefill
	_, fast := startSim(t, fakellm.SimOptions{Speed: 10})
	_, slow := startSim(t, fakellm.SimOptions{Speed: 10, Slowness: 3})
	f := mustChat(t, fast, "m", prompt, 2)
	sl := mustChat(t, slow, "m", prompt, 2)
	assert.InDelta(t, 20*time.Millisecond, f.prefill, float64(100*time.Microsecond), "2003 tokens × 0.1 ms / 10")
	assert.InDelta(t, 3*f.prefill, sl.prefill, float64(10*time.Microsecond))
	assert.InDelta(t, 3*f.simTTFT, sl.simTTFT, float64(10*time.Microsecond))
	assert.GreaterOrEqual(t, sl.ttft, sl.simTTFT)
}

func TestNewSimRejectsInvalidOptions(t *testing.T) {
	for name, tc := range map[string]struct {
		opts fakellm.SimOptions
		want string
	}{
		"negative slots":     {fakellm.SimOptions{MaxNumSeqs: -1}, "max num seqs -1 is negative"},
		"negative speed":     {fakellm.SimOptions{Speed: -2}, "speed -2 must be positive"},
		"negative slowness":  {fakellm.SimOptions{Slowness: -1}, "slowness -1 must be positive"},
		"negative prefill":   {fakellm.SimOptions{PrefillPerToken: -1}, "prefill per token -1ns is negative"},
		"duplicate adapter":  {fakellm.SimOptions{LoRAs: []string{"a", "a"}}, `LoRA adapter "a" is listed twice`},
		"adapter named base": {fakellm.SimOptions{LoRAs: []string{"fake-model"}}, `LoRA adapter "fake-model" has the base model's name`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := fakellm.NewSim(tc.opts)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// FuzzSimChat sends arbitrary bodies to the simulator's chat endpoint: it
// must answer without panicking and leave nothing queued, running or held.
func FuzzSimChat(f *testing.F) {
	f.Add(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	f.Add(`{"model":"sql","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":[{"type":"text","text":"x"}]},{"role":"user","content":null}]}`)
	f.Add(`{"model":"m","max_tokens":0,"messages":[]}`)
	f.Add(`{"model":"m","messages":[{"role":"user","content":7}]}`)
	f.Add(`{"messages":`)
	s, err := fakellm.NewSim(fakellm.SimOptions{Speed: 1e6, KVBlocks: 64, LoRAs: []string{"sql"}, Tokens: 3})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, body string) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
		s.ServeHTTP(w, r)
		if w.Code != http.StatusOK && w.Code != http.StatusBadRequest {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		st := s.State()
		if st.Running != 0 || st.Waiting != 0 || st.KVUsage != 0 {
			t.Fatalf("state after the request: %+v", st)
		}
	})
}

// BenchmarkSimChat measures the simulator's own cost per request (decode,
// hashing a 32 KiB prompt, admission, response) with simulated time scaled
// to nothing, so a benchmark of many simulated servers is not bound by them.
func BenchmarkSimChat(b *testing.B) {
	s, err := fakellm.NewSim(fakellm.SimOptions{Speed: 1e9, Tokens: 16})
	require.NoError(b, err)
	body, err := json.Marshal(map[string]any{"model": "m",
		"messages": []map[string]string{{"role": "system", "content": longPrompt("bench", 32<<10)}, {"role": "user", "content": "hi"}}})
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(string(body))))
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}

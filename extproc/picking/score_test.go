package picking

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

// testConfig is a backend's picking block with config's defaults.
func testConfig() config.Picking {
	return config.Picking{
		Weights:          &config.PickWeights{Queue: 2, KVCache: 1, InFlight: 1, Prefix: 3, LoRA: 2},
		StaleAfter:       500 * time.Millisecond,
		PrefixBlockBytes: 256, PrefixBlocks: 16384, Fallbacks: 2,
	}
}

// epSpec is one test endpoint's state.
type epSpec struct {
	m        *Metrics      // nil: never scraped
	age      time.Duration // of the scrape
	inFlight int
	holds    bool // the prompt was routed here before
}

var testNow = time.Unix(1_800_000_000, 0)

func testPrompt() []byte {
	p := make([]byte, 8*256)
	for i := range p {
		p[i] = byte('a' + i%23)
	}
	return p
}

// testBackend builds a backend of specs with cfg at testNow; endpoint i is
// "10.0.0.i:80".
func testBackend(t testing.TB, cfg config.Picking, specs []epSpec, prompt []byte) *Backend {
	t.Helper()
	eps := make([]*Endpoint, len(specs))
	for i, s := range specs {
		e := NewEndpoint(fmt.Sprintf("10.0.0.%d:80", i), &cfg)
		if s.m != nil {
			e.Store(*s.m, testNow.Add(-s.age))
		}
		for range s.inFlight {
			e.Start()
		}
		if s.holds {
			require.NotNil(t, e.prefix, "prefix affinity is on")
			e.prefix.record(hashBlocks(nil, prompt, blockBytes(&cfg)))
		}
		eps[i] = e
	}
	return NewBackend("b", cfg, eps)
}

func addrs(idx ...int) []string {
	out := make([]string, len(idx))
	for i, x := range idx {
		out[i] = fmt.Sprintf("10.0.0.%d:80", x)
	}
	return out
}

func waiting(w, kv float64) *Metrics { return &Metrics{Waiting: w, KVCache: kv} }

func TestPick(t *testing.T) {
	stale := time.Second
	lora := func(w float64, running ...string) *Metrics {
		return &Metrics{Waiting: w, RunningLoRA: running, MaxLoRA: len(running)}
	}
	tests := map[string]struct {
		cfg       func(*config.Picking)
		eps       []epSpec
		lora      string
		want      []string
		reason    string
		saturated bool
	}{
		"loaded endpoint avoided": {
			eps:    []epSpec{{m: waiting(10, 0.9)}, {m: waiting(0, 0.1)}, {m: waiting(5, 0.5)}},
			want:   addrs(1, 2, 0),
			reason: ReasonScore,
		},
		"in-flight counts as load": {
			eps:    []epSpec{{m: waiting(0, 0.2), inFlight: 5}, {m: waiting(0, 0.2), inFlight: 1}, {m: waiting(0, 0.2), inFlight: 3}},
			want:   addrs(1, 2, 0),
			reason: ReasonScore,
		},
		"prefix holder preferred over slightly less load": {
			eps:    []epSpec{{m: waiting(1, 0.2)}, {m: waiting(2, 0.2), holds: true}, {m: waiting(3, 0.2)}},
			want:   addrs(1, 0, 2),
			reason: ReasonPrefix,
		},
		"prefix holder avoided when overloaded": {
			eps:    []epSpec{{m: waiting(0, 0.1)}, {m: waiting(40, 0.98), holds: true, inFlight: 40}},
			want:   addrs(0, 1),
			reason: ReasonScore,
		},
		"adapter holder preferred": {
			eps:    []epSpec{{m: lora(1, "x")}, {m: lora(2, "a")}},
			lora:   "a",
			want:   addrs(1, 0),
			reason: ReasonLoRA,
		},
		"base model request ignores adapters": {
			eps:    []epSpec{{m: lora(1, "x")}, {m: lora(2, "a")}},
			want:   addrs(0, 1),
			reason: ReasonScore,
		},
		"stale metrics fall back to in-flight": {
			eps: []epSpec{
				{m: waiting(0, 0), age: stale, inFlight: 3},
				{m: waiting(99, 1), age: stale, inFlight: 1},
				{inFlight: 2}, // never scraped
			},
			want:   addrs(1, 2, 0),
			reason: ReasonInFlight,
		},
		"stale endpoint ranks after an idle fresh one": {
			eps:    []epSpec{{m: waiting(0, 0), age: stale}, {m: waiting(0, 0.1)}},
			want:   addrs(1, 0),
			reason: ReasonScore,
		},
		"all saturated: least loaded first, affinity ignored": {
			cfg:       func(c *config.Picking) { c.Saturation = config.PickSaturation{Queue: 5, KVCache: 0.9} },
			eps:       []epSpec{{m: waiting(9, 0.5)}, {m: waiting(1, 0.95)}, {m: waiting(20, 0.5), holds: true}},
			want:      addrs(1, 0, 2),
			reason:    ReasonSaturated,
			saturated: true,
		},
		"one endpoint below thresholds: not saturated": {
			cfg:    func(c *config.Picking) { c.Saturation = config.PickSaturation{Queue: 5} },
			eps:    []epSpec{{m: waiting(9, 0.5)}, {m: waiting(4, 0.5)}},
			want:   addrs(1, 0),
			reason: ReasonScore,
		},
		"stale endpoint is not known saturated, yet ranks after a full fresh one": {
			cfg:    func(c *config.Picking) { c.Saturation = config.PickSaturation{Queue: 5} },
			eps:    []epSpec{{m: waiting(9, 0.5)}, {m: waiting(9, 0.5), age: stale}},
			want:   addrs(0, 1),
			reason: ReasonScore,
		},
		"stale endpoint holding the prefix ranks after loaded fresh ones": {
			eps:    []epSpec{{m: waiting(0, 0), age: stale, holds: true}, {m: waiting(6, 0.7)}, {m: waiting(3, 0.5)}},
			want:   addrs(2, 1, 0),
			reason: ReasonScore,
		},
		"zero thresholds never saturate": {
			eps:    []epSpec{{m: waiting(900, 1)}, {m: waiting(800, 1)}},
			want:   addrs(1, 0),
			reason: ReasonScore,
		},
		"fallbacks ordered and bounded": {
			eps:    []epSpec{{m: waiting(4, 0)}, {m: waiting(2, 0)}, {m: waiting(0, 0)}, {m: waiting(3, 0)}, {m: waiting(1, 0)}},
			want:   addrs(2, 4, 1),
			reason: ReasonScore,
		},
		"more fallbacks than endpoints": {
			cfg:    func(c *config.Picking) { c.Fallbacks = 8 },
			eps:    []epSpec{{m: waiting(1, 0)}, {m: waiting(0, 0)}},
			want:   addrs(1, 0),
			reason: ReasonScore,
		},
		"no fallbacks": {
			cfg:    func(c *config.Picking) { c.Fallbacks = 0 },
			eps:    []epSpec{{m: waiting(1, 0)}, {m: waiting(0, 0)}},
			want:   addrs(1),
			reason: ReasonScore,
		},
		"zero prefix weight disables prefix affinity": {
			cfg:    func(c *config.Picking) { c.Weights.Prefix = 0 },
			eps:    []epSpec{{m: waiting(1, 0.2)}, {m: waiting(2, 0.2)}},
			want:   addrs(0, 1),
			reason: ReasonScore,
		},
		"zero lora weight disables adapter affinity": {
			cfg:    func(c *config.Picking) { c.Weights.LoRA = 0 },
			eps:    []epSpec{{m: lora(1, "x")}, {m: lora(2, "a")}},
			lora:   "a",
			want:   addrs(0, 1),
			reason: ReasonScore,
		},
		"zero queue weight ignores the queue": {
			cfg:    func(c *config.Picking) { c.Weights.Queue = 0 },
			eps:    []epSpec{{m: waiting(0, 0.5)}, {m: waiting(50, 0.1)}},
			want:   addrs(1, 0),
			reason: ReasonScore,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig()
			w := *cfg.Weights
			cfg.Weights = &w
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			prompt := testPrompt()
			b := testBackend(t, cfg, tc.eps, prompt)
			res := b.Pick(Request{Prompt: prompt, LoRA: tc.lora}, testNow)
			defer res.Done()
			assert.Equal(t, tc.want, res.Endpoints)
			assert.Equal(t, tc.reason, res.Reason)
			assert.Equal(t, tc.saturated, res.Saturated)
		})
	}
}

func TestPickRecordsPromptOnChosenEndpointOnly(t *testing.T) {
	prompt := testPrompt()
	b := testBackend(t, testConfig(), []epSpec{{m: waiting(1, 0)}, {m: waiting(0, 0)}}, prompt)
	res := b.Pick(Request{Prompt: prompt}, testNow)
	res.Done()
	hs := hashBlocks(nil, prompt, 256)
	assert.Equal(t, len(hs), b.eps[1].prefix.matched(hs), "chosen endpoint holds the prompt")
	assert.Zero(t, b.eps[0].prefix.matched(hs), "others do not")

	// The next request sharing the prompt's prefix sticks to it despite
	// slightly more load.
	b.eps[1].Store(Metrics{Waiting: 2}, testNow)
	res = b.Pick(Request{Prompt: append(prompt[:len(prompt):len(prompt)], prompt...)}, testNow)
	defer res.Done()
	assert.Equal(t, addrs(1, 0), res.Endpoints)
	assert.Equal(t, ReasonPrefix, res.Reason)
}

func TestPickDoneBalancesInFlight(t *testing.T) {
	b := testBackend(t, testConfig(), []epSpec{{m: waiting(0, 0)}, {m: waiting(0, 0)}, {}}, nil)
	var rs []Result
	for range 10 {
		rs = append(rs, b.Pick(Request{}, testNow))
	}
	total := int64(0)
	for _, e := range b.eps {
		total += e.InFlight()
	}
	assert.EqualValues(t, 10, total, "each pick counts one request")
	for i := range rs {
		rs[i].Done()
		rs[i].Done() // a second Done is a no-op
	}
	for _, e := range b.eps {
		assert.Zero(t, e.InFlight(), e.Addr)
	}
	var zero Result
	zero.Done()
}

func TestPickSpreadsEqualEndpoints(t *testing.T) {
	b := testBackend(t, testConfig(), []epSpec{{m: waiting(0, 0)}, {m: waiting(0, 0)}, {m: waiting(0, 0)}, {m: waiting(0, 0)}}, nil)
	counts := map[string]int{}
	for range 400 {
		res := b.Pick(Request{}, testNow)
		counts[res.Endpoints[0]]++
		res.Done()
	}
	for _, a := range addrs(0, 1, 2, 3) {
		assert.Equal(t, 100, counts[a], a)
	}
}

func TestPickEmptyBackend(t *testing.T) {
	res := NewBackend("b", testConfig(), nil).Pick(Request{Prompt: testPrompt()}, testNow)
	assert.Empty(t, res.Endpoints)
	res.Done()
}

func TestPickWithoutWeightsUsesDefaults(t *testing.T) {
	cfg := testConfig()
	cfg.Weights = nil
	cfg.PrefixBlockBytes = 0
	b := testBackend(t, cfg, []epSpec{{m: waiting(5, 0)}, {m: waiting(0, 0)}}, nil)
	res := b.Pick(Request{Prompt: testPrompt()}, testNow)
	defer res.Done()
	assert.Equal(t, addrs(1, 0), res.Endpoints)
}

func TestPickAllocatesOnlyTheResult(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop scratch")
	}
	b := testBackend(t, testConfig(), make([]epSpec, 64), nil)
	p := make([]byte, 32<<10)
	allocs := testing.AllocsPerRun(200, func() {
		r := b.Pick(Request{Prompt: p, LoRA: "a"}, testNow)
		r.Done()
	})
	assert.LessOrEqual(t, allocs, 1.0)
}

func TestScoreAll(t *testing.T) {
	only := func(set func(*weights)) weights { var w weights; set(&w); return w }
	tests := map[string]struct {
		w      weights
		cands  []cand
		blocks int
		lora   bool
		want   []float64
	}{
		"queue is proportional to the longest queue": {
			w:     only(func(w *weights) { w.queue = 1 }),
			cands: []cand{{fresh: true, waiting: 0}, {fresh: true, waiting: 1}, {fresh: true, waiting: 3}},
			want:  []float64{1, 0.75, 0.25},
		},
		"kv cache": {
			w:     only(func(w *weights) { w.kv = 1 }),
			cands: []cand{{fresh: true, kv: 0.2}, {fresh: true, kv: 1}},
			want:  []float64{0.8, 0},
		},
		"in-flight is proportional to the most in flight": {
			w:     only(func(w *weights) { w.inFlight = 1 }),
			cands: []cand{{inFlight: 0}, {inFlight: 1}, {inFlight: 3}},
			want:  []float64{1, 0.75, 0.25},
		},
		"stale endpoint: in-flight stands in for queue, halved beside fresh ones": {
			w:     only(func(w *weights) { w.queue = 1 }),
			cands: []cand{{fresh: true, waiting: 1}, {inFlight: 0}},
			want:  []float64{0.5, 0.5},
		},
		"all stale: in-flight stands in whole": {
			w:     only(func(w *weights) { w.queue, w.kv = 1, 1 }),
			cands: []cand{{inFlight: 1}, {inFlight: 0}},
			want:  []float64{0.5, 1},
		},
		"prefix share": {
			w:      only(func(w *weights) { w.prefix = 1 }),
			cands:  []cand{{prefix: 0.5}, {prefix: 0}},
			blocks: 4,
			want:   []float64{0.5, 0},
		},
		"prefix left out without blocks": {
			w:     weights{queue: 1, prefix: 1},
			cands: []cand{{fresh: true, prefix: 0.5}},
			want:  []float64{1},
		},
		"lora": {
			w:     only(func(w *weights) { w.lora = 1 }),
			cands: []cand{{lora: loraRunning}, {lora: 0}},
			lora:  true,
			want:  []float64{loraRunning, 0},
		},
		"weighted mean": {
			w:      weights{queue: 2, kv: 1, inFlight: 1, prefix: 3, lora: 2},
			cands:  []cand{{fresh: true, waiting: 1, kv: 0.5, inFlight: 1, prefix: 1, lora: 1}},
			blocks: 1,
			lora:   true,
			want:   []float64{(2*0.5 + 0.5 + 0.5 + 3 + 2) / 9},
		},
		"all weights zero": {
			cands: []cand{{fresh: true, waiting: 3}, {}},
			want:  []float64{0, 0},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var g gathered
			for _, c := range tc.cands {
				g.anyFresh = g.anyFresh || c.fresh
				if c.fresh {
					g.maxWaiting = max(g.maxWaiting, c.waiting)
				}
				g.maxInFlight = max(g.maxInFlight, c.inFlight)
			}
			scoreAll(tc.cands, g, tc.w, tc.blocks, tc.lora)
			got := make([]float64, len(tc.cands))
			for i, c := range tc.cands {
				got[i] = c.score
			}
			assert.InDeltaSlice(t, tc.want, got, 1e-12)
		})
	}
}

func TestPickConcurrentWithStore(t *testing.T) {
	cfg := testConfig()
	cfg.Saturation.Queue = 8
	b := testBackend(t, cfg, make([]epSpec, 8), nil)
	prompts := benchPrompts(8, 4<<10)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			e := b.eps[i%len(b.eps)]
			e.Store(Metrics{Waiting: float64(i % 11), KVCache: float64(i%10) / 10, RunningLoRA: []string{"a"}, MaxLoRA: 2}, testNow)
		}
	})
	var pickers sync.WaitGroup
	for g := range 4 {
		pickers.Go(func() {
			for i := range 500 {
				r := b.Pick(Request{Prompt: prompts[(g+i)%len(prompts)], LoRA: "a"}, testNow)
				assert.Len(t, r.Endpoints, 3)
				r.Done()
			}
		})
	}
	pickers.Wait()
	close(stop)
	wg.Wait()
	for _, e := range b.eps {
		assert.Zero(t, e.InFlight(), e.Addr)
	}
}

// validResult checks res is an ordering of distinct endpoints of b of the
// configured length with a known reason.
func validResult(t testing.TB, b *Backend, res Result) {
	t.Helper()
	want := min(len(b.eps), 1+max(b.cfg.Fallbacks, 0))
	if len(res.Endpoints) != want {
		t.Fatalf("got %d endpoints, want %d", len(res.Endpoints), want)
	}
	seen := map[string]bool{}
	for _, a := range res.Endpoints {
		if seen[a] || !slices.ContainsFunc(b.eps, func(e *Endpoint) bool { return e.Addr == a }) {
			t.Fatalf("endpoint %q repeated or unknown in %v", a, res.Endpoints)
		}
		seen[a] = true
	}
	if !slices.Contains([]string{ReasonScore, ReasonPrefix, ReasonLoRA, ReasonInFlight, ReasonSaturated}, res.Reason) {
		t.Fatalf("unknown reason %q", res.Reason)
	}
	if res.Saturated != (res.Reason == ReasonSaturated) {
		t.Fatalf("saturated %v with reason %q", res.Saturated, res.Reason)
	}
}

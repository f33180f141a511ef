package fakellm

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MetricsPath is where a Sim serves its Prometheus metrics, as vLLM does.
const MetricsPath = "/metrics"

// Response headers of a Sim's completions: what the simulation decided for
// the request, in microseconds of scaled (real) time, so tests and
// benchmarks can check the model without timing the network.
const (
	// HeaderSimQueue is the time the request waited for a slot.
	HeaderSimQueue = "x-fakellm-sim-queue-us"
	// HeaderSimPrefill is the prefill compute of its uncached prompt tokens.
	HeaderSimPrefill = "x-fakellm-sim-prefill-us"
	// HeaderSimTTFT is the time from its admission to its first token:
	// adapter load, waiting for the prefills booked before it, its own
	// prefill and the decode step that emits the first token.
	HeaderSimTTFT = "x-fakellm-sim-ttft-us"
)

// Sim is a fake model server that behaves like one vLLM server under load:
// a fixed number of running slots with a FIFO waiting queue, a paged KV
// cache with prefix caching (cached prompt blocks are nearly free, the
// others cost prefill time; free cached blocks are evicted least recently
// used first, blocks of running requests never), decode steps that slow
// down as the batch grows, LoRA adapters loaded into a few slots at a cost,
// and vLLM's metrics on /metrics. Chat and legacy completions go through
// the simulation; every other path is served as by Server (models, health,
// stats, failure injection headers). The x-fakellm-ttft-ms and
// x-fakellm-itl-ms headers are ignored: the simulation decides the timing.
//
// Prompts are measured in simulated tokens of 4 bytes (see bytesPerToken);
// the usage reports them, with the prefix-cache hits in
// usage.prompt_tokens_details.cached_tokens as vLLM does.
//
// All simulation state sits behind one mutex; no goroutine runs besides the
// handlers' own. Create it with NewSim.
type Sim struct {
	base     *Server
	opts     SimOptions
	factor   float64 // Slowness / Speed
	adapters map[string]bool
	metrics  http.Handler

	mu          sync.Mutex
	waiting     *list.List // of *simRequest, in arrival order
	running     int
	kv          *kvCache
	prefillFree time.Time // when the prefill booked so far ends
	loras       map[string]*loraSlot
	loraClock   uint64
	loraLoads   uint64
	queries     uint64 // prompt tokens looked up in the prefix cache
	hits        uint64 // prompt tokens found there
}

var _ http.Handler = (*Sim)(nil)

// NewSim returns a simulator configured by opts (zero fields take the
// DefaultSim* values) or the list of every invalid option.
func NewSim(opts SimOptions) (*Sim, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	s := &Sim{
		base:     New(Options{Name: opts.Name, Tokens: opts.Tokens}),
		opts:     opts,
		factor:   opts.Slowness / opts.Speed,
		adapters: make(map[string]bool, len(opts.LoRAs)),
		waiting:  list.New(),
		kv:       newKVCache(opts.KVBlocks),
		loras:    map[string]*loraSlot{},
	}
	s.base.models[opts.Model] = struct{}{}
	for _, name := range opts.LoRAs {
		s.adapters[name] = true
		s.base.models[name] = struct{}{}
	}
	s.metrics = newSimMetrics(s)
	return s, nil
}

// Options returns the options in effect, defaults applied.
func (s *Sim) Options() SimOptions { return s.opts }

// Stats returns the request accounting, as Server.Stats.
func (s *Sim) Stats() Stats { return s.base.Stats() }

// SetHealthy sets what /health answers, as Server.SetHealthy.
func (s *Sim) SetHealthy(ok bool) { s.base.SetHealthy(ok) }

// ServeHTTP serves the simulated completions, GET /metrics, and every other
// path as Server does.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/chat/completions":
		w.Header().Set(HeaderBackend, s.opts.Name)
		if allowMethod(w, r, http.MethodPost) {
			s.serveChat(w, r)
		}
	case "/v1/completions":
		w.Header().Set(HeaderBackend, s.opts.Name)
		if allowMethod(w, r, http.MethodPost) {
			s.serveText(w, r)
		}
	case MetricsPath:
		w.Header().Set(HeaderBackend, s.opts.Name)
		if allowMethod(w, r, http.MethodGet) {
			s.metrics.ServeHTTP(w, r)
		}
	default:
		s.base.ServeHTTP(w, r)
	}
}

// serveChat answers POST /v1/chat/completions through the simulation. The
// prompt is every message as "role\ncontent\n", in order, the shape of a
// chat template: requests sharing a system prompt share a prefix.
func (s *Sim) serveChat(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	sc, ok := s.base.accept(w, r, &req, func() string { return req.Model })
	if !ok {
		return
	}
	limits := []tokenLimit{{"max_tokens", req.MaxTokens}, {"max_completion_tokens", req.MaxCompletionTokens}}
	if !checkLimits(w, limits...) {
		return
	}
	prompt, err := chatPromptBytes(req.Messages)
	if err != nil {
		writeError(w, http.StatusBadRequest, apiError{Message: err.Error(), Type: typeInvalidRequest, Param: ptr("messages")})
		return
	}
	c := &completion{chat: true, id: newID("chatcmpl-"), model: req.Model}
	c.tokens, c.finish = outputTokens(sc, limits...)
	c.planToolCall(req)
	s.generate(w, r, c, sc, prompt, req.Stream, req.StreamOptions)
}

// serveText answers POST /v1/completions through the simulation; several
// prompts are simulated as one, joined by newlines.
func (s *Sim) serveText(w http.ResponseWriter, r *http.Request) {
	var req textRequest
	sc, ok := s.base.accept(w, r, &req, func() string { return req.Model })
	if !ok {
		return
	}
	limit := tokenLimit{"max_tokens", req.MaxTokens}
	if !checkLimits(w, limit) {
		return
	}
	inputs, _, err := splitInputs(req.Prompt)
	if err != nil {
		writeError(w, http.StatusBadRequest, apiError{Message: "cannot decode prompt: " + err.Error(), Type: typeInvalidRequest, Param: ptr("prompt")})
		return
	}
	c := &completion{id: newID("cmpl-"), model: req.Model}
	c.tokens, c.finish = outputTokens(sc, limit)
	s.generate(w, r, c, sc, []byte(strings.Join(inputs, "\n")), req.Stream, req.StreamOptions)
}

// generate runs c through the simulation: it queues for a slot, waits for
// its prefill, then paces every further token by the decode step of the
// moment. The request's slot, blocks and adapter are given back when it
// ends, at once when the client goes away.
func (s *Sim) generate(w http.ResponseWriter, r *http.Request, c *completion, sc scenario, prompt []byte, stream bool, opts *streamOptions) {
	adapter := ""
	if s.adapters[c.model] {
		adapter = c.model
	}
	req := s.newSimRequest(prompt, adapter)
	if !s.enqueue(req) {
		writeError(w, http.StatusBadRequest, apiError{Message: s.contextLengthMessage(req), Type: typeInvalidRequest, Param: ptr("messages")})
		return
	}
	defer s.release(req)
	ctx := r.Context()
	select {
	case <-req.ready:
	case <-ctx.Done():
		s.base.markCancelled()
		return
	}
	c.created = time.Now().Unix()
	c.promptTokens = req.tokens
	c.cachedTokens = ptr(req.cached)
	h := w.Header()
	h.Set(HeaderSimQueue, strconv.FormatInt(req.admitted.Sub(req.arrived).Microseconds(), 10))
	h.Set(HeaderSimPrefill, strconv.FormatInt(req.prefill.Microseconds(), 10))
	h.Set(HeaderSimTTFT, strconv.FormatInt(req.firstToken.Sub(req.admitted).Microseconds(), 10))
	if !s.base.wait(ctx, time.Until(req.firstToken)) {
		return
	}
	if !stream {
		for i := 1; i < c.tokens; i++ {
			if !s.base.wait(ctx, s.nextStep(req, i)) {
				return
			}
		}
		s.base.respond(w, r, 0, sc.fail, c.response())
		return
	}
	c.includeUsage = opts != nil && opts.IncludeUsage
	s.stream(ctx, w, c, sc, req)
}

// stream writes c as server-sent events (Server.streamEvents), the first
// token at once (the prefill produced it) and each further one after a
// decode step.
func (s *Sim) stream(ctx context.Context, w http.ResponseWriter, c *completion, sc scenario, req *simRequest) {
	s.base.streamEvents(ctx, w, c, sc, func(i int) time.Duration { return s.nextStep(req, i) })
}

// chatPromptBytes renders messages as the simulator's prompt text.
func chatPromptBytes(messages []chatMessage) ([]byte, error) {
	var b []byte
	for i, m := range messages {
		b = append(b, m.Role...)
		b = append(b, '\n')
		var err error
		if b, err = appendContent(b, m.Content); err != nil {
			return nil, fmt.Errorf("cannot decode messages[%d].content: %w", i, err)
		}
		b = append(b, '\n')
	}
	return b, nil
}

// appendContent appends the text of a message content that is null, a
// string or an array of content parts (text parts only).
func appendContent(b []byte, raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return b, nil
	}
	var text string
	if err := json.Unmarshal(raw, &text); err == nil {
		return append(b, text...), nil
	}
	var parts []contentPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, errors.New("content must be a string or an array of content parts")
	}
	for _, p := range parts {
		b = append(b, p.Text...)
	}
	return b, nil
}

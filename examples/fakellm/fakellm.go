// Package fakellm is Streamgate's fake model server: an http.Handler that
// speaks the OpenAI HTTP API (chat completions, legacy completions,
// embeddings and models), the Anthropic Messages API (anthropic.go),
// Ollama's /api/chat (ollama.go) and /api/embed (ollama_embed.go) and the KServe v2 generate extension
// (kserve.go) with deterministic output, configurable latency and
// header-driven failure injection. It is the backend of the demo and of the
// end-to-end tests, which use its response headers and Stats to check
// routing, model rewriting and cancellation propagation through the gateway.
//
// Sim (sim*.go) is the same server behaving like a vLLM server under load:
// slots, a queue, a prefix-cached KV cache, LoRA adapters and vLLM's
// metrics; README.md in this directory documents its model and numbers.
package fakellm

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Header names understood or emitted by the fake model server.
const (
	// HeaderBackend is set on every response to Options.Name.
	HeaderBackend = "x-fakellm-backend"
	// HeaderReceivedModel is set to the "model" field of the request body
	// whenever the body could be decoded.
	HeaderReceivedModel = "x-fakellm-received-model"
	// HeaderTTFT overrides Options.TTFT for one request, in milliseconds.
	HeaderTTFT = "x-fakellm-ttft-ms"
	// HeaderITL overrides Options.ITL for one request, in milliseconds.
	HeaderITL = "x-fakellm-itl-ms"
	// HeaderTokens overrides Options.Tokens for one request.
	HeaderTokens = "x-fakellm-tokens"
	// HeaderFail injects a failure: "500", "429", "503", "disconnect",
	// "midstream", "hang" (no answer at all), "stall" (half the stream,
	// then silence) or "malformed" (cut-off JSON in the middle of the
	// stream).
	HeaderFail = "x-fakellm-fail"
	// HeaderFailBackend limits HeaderFail to the backend of this name, so
	// one request can fail on a primary and succeed on its fallback.
	HeaderFailBackend = "x-fakellm-fail-backend"
)

// StatsPath is the path at which GET returns the JSON encoding of Stats.
const StatsPath = "/_fakellm/stats"

// HealthPath answers health checks, as vLLM, TGI and SGLang serve /health.
const HealthPath = "/health"

// DefaultModel is always listed by GET /v1/models.
const DefaultModel = "fake-model"

const (
	defaultName     = "fakellm"
	defaultTokens   = 16
	cancelledBuffer = 1024
)

// Options configures a Server. The zero value is usable.
type Options struct {
	Name   string        // backend name, reported in response header "x-fakellm-backend" ("fakellm" when empty)
	TTFT   time.Duration // delay before first token / before the non-streaming response
	ITL    time.Duration // delay between tokens
	Tokens int           // default number of output tokens (default 16 when 0)
	// APIKey, when set, is the key the Realtime endpoint requires
	// (realtime.go); other endpoints do not check credentials.
	APIKey string
}

// Stats is a snapshot of the server's request accounting.
type Stats struct {
	Requests      int64  // requests received on completion endpoints
	Completed     int64  // streams/responses fully written
	Cancelled     int64  // requests whose client (r.Context()) went away before completion
	LastModel     string // the "model" field of the last request body received
	LastBodyBytes int    // size of the last request body received
}

// Server is the fake model server. It is safe for concurrent use; create it
// with New.
type Server struct {
	opts      Options
	created   int64
	cancelled chan struct{}

	healthy atomic.Bool

	rt realtimeState

	mu     sync.Mutex
	stats  Stats
	models map[string]struct{}
}

// New returns a Server configured by opts. A zero Tokens means 16 output
// tokens, an empty Name means "fakellm" and negative delays mean none.
func New(opts Options) *Server {
	if opts.Name == "" {
		opts.Name = defaultName
	}
	if opts.Tokens <= 0 {
		opts.Tokens = defaultTokens
	}
	opts.TTFT = max(opts.TTFT, 0)
	opts.ITL = max(opts.ITL, 0)
	s := &Server{
		opts:      opts,
		created:   time.Now().Unix(),
		cancelled: make(chan struct{}, cancelledBuffer),
		models:    map[string]struct{}{DefaultModel: {}},
	}
	s.healthy.Store(true)
	return s
}

// SetHealthy sets what HealthPath answers: 200 when true, 503 when false.
func (s *Server) SetHealthy(ok bool) { s.healthy.Store(ok) }

// ServeHTTP routes the OpenAI endpoints (with rerank and the Realtime
// WebSocket), GET /v1/models[/{id}] and
// GET /_fakellm/stats. Every response carries the x-fakellm-backend header;
// unknown paths get a 404 and wrong methods a 405, both with an OpenAI error
// body.
//
// The "midstream" failure and the "disconnect" failure on connections that
// cannot be hijacked abort the response with panic(http.ErrAbortHandler), so
// the handler must run inside an http.Server (as with httptest.NewServer).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(HeaderBackend, s.opts.Name)
	switch path := r.URL.Path; path {
	case "/v1/chat/completions":
		if allowMethod(w, r, http.MethodPost) {
			s.serveChat(w, r)
		}
	case "/v1/completions":
		if allowMethod(w, r, http.MethodPost) {
			s.serveText(w, r)
		}
	case "/v1/messages":
		if allowMethod(w, r, http.MethodPost) {
			s.serveMessages(w, r)
		}
	case "/api/chat":
		if allowMethod(w, r, http.MethodPost) {
			s.serveOllamaChat(w, r)
		}
	case "/api/embed":
		if allowMethod(w, r, http.MethodPost) {
			s.serveOllamaEmbed(w, r)
		}
	case "/v1/embeddings":
		if allowMethod(w, r, http.MethodPost) {
			s.serveEmbeddings(w, r)
		}
	case "/v1/rerank":
		if allowMethod(w, r, http.MethodPost) {
			s.serveRerank(w, r)
		}
	case ImagesGenerationsPath:
		if allowMethod(w, r, http.MethodPost) {
			s.serveImageGenerations(w, r)
		}
	case ImagesEditsPath:
		if allowMethod(w, r, http.MethodPost) {
			s.serveImageEdits(w, r)
		}
	case "/v1/audio/transcriptions", "/v1/audio/translations":
		if allowMethod(w, r, http.MethodPost) {
			s.serveTranscription(w, r, path == "/v1/audio/translations")
		}
	case "/v1/audio/speech":
		if allowMethod(w, r, http.MethodPost) {
			s.serveSpeech(w, r)
		}
	case RealtimePath:
		if allowMethod(w, r, http.MethodGet) {
			s.serveRealtime(w, r)
		}
	case "/v1/models":
		if allowMethod(w, r, http.MethodGet) {
			s.serveModels(w)
		}
	case StatsPath:
		if allowMethod(w, r, http.MethodGet) {
			writeJSON(w, http.StatusOK, s.Stats())
		}
	case HealthPath:
		// Health checks answer 200 while the server is healthy and 503
		// after SetHealthy(false), as vLLM's /health does when it fails.
		if s.healthy.Load() {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		} else {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unhealthy"})
		}
	default:
		if name, stream, ok := kservePath(path); ok {
			if allowMethod(w, r, http.MethodPost) {
				s.serveKServe(w, r, name, stream)
			}
			return
		}
		id, ok := strings.CutPrefix(path, "/v1/models/")
		if ok && id != "" {
			if allowMethod(w, r, http.MethodGet) {
				s.serveModel(w, id)
			}
			return
		}
		writeError(w, http.StatusNotFound, apiError{
			Message: "Invalid URL (" + r.Method + " " + path + ")",
			Type:    typeInvalidRequest,
		})
	}
}

// Stats returns a snapshot of the request accounting. It is safe for
// concurrent use.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// CancelledCh returns a channel that receives one value each time a request
// is seen cancelled by its client. The channel is buffered (1024 values) and
// the server never blocks on it: signals are dropped while it is full.
func (s *Server) CancelledCh() <-chan struct{} {
	return s.cancelled
}

// countRequest records the arrival of a request on a completion endpoint.
func (s *Server) countRequest() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Requests++
}

// recordBody records the size of a received body and, when it was decoded,
// its model, which then appears in GET /v1/models.
func (s *Server) recordBody(model string, size int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.LastModel = model
	s.stats.LastBodyBytes = size
	if model != "" {
		s.models[model] = struct{}{}
	}
}

// markCompleted records a response whose last byte was written.
func (s *Server) markCompleted() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Completed++
}

// markCancelled records a request abandoned by its client and signals
// CancelledCh without blocking.
func (s *Server) markCancelled() {
	s.mu.Lock()
	s.stats.Cancelled++
	s.mu.Unlock()
	select {
	case s.cancelled <- struct{}{}:
	default:
	}
}

// modelNames returns DefaultModel and every model seen so far, sorted.
func (s *Server) modelNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.models))
	for name := range s.models {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// hasModel reports whether id is DefaultModel or a model seen so far.
func (s *Server) hasModel(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.models[id]
	return ok
}

// serveModels answers GET /v1/models.
func (s *Server) serveModels(w http.ResponseWriter) {
	names := s.modelNames()
	list := modelList{Object: "list", Data: make([]model, 0, len(names))}
	for _, name := range names {
		list.Data = append(list.Data, s.model(name))
	}
	writeJSON(w, http.StatusOK, list)
}

// serveModel answers GET /v1/models/{id}.
func (s *Server) serveModel(w http.ResponseWriter, id string) {
	if !s.hasModel(id) {
		writeError(w, http.StatusNotFound, apiError{
			Message: "The model '" + id + "' does not exist",
			Type:    typeInvalidRequest,
			Param:   ptr("model"),
			Code:    ptr("model_not_found"),
		})
		return
	}
	writeJSON(w, http.StatusOK, s.model(id))
}

// model returns the model object for id.
func (s *Server) model(id string) model {
	return model{ID: id, Object: "model", Created: s.created, OwnedBy: "fakellm"}
}

// allowMethod reports whether r uses method, answering 405 otherwise.
func allowMethod(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method {
		return true
	}
	w.Header().Set("Allow", method)
	writeError(w, http.StatusMethodNotAllowed, apiError{
		Message: "Method " + r.Method + " not allowed for " + r.URL.Path + "; use " + method,
		Type:    typeInvalidRequest,
	})
	return false
}

// ptr returns a pointer to v.
func ptr[T any](v T) *T {
	return &v
}

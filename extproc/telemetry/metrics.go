// Package telemetry measures what passes through Streamgate: GenAI metrics
// named after the OpenTelemetry semantic conventions (in Prometheus form),
// Streamgate's own request metrics, cost, and usage events. It knows
// nothing about ext_proc: the processor fills a Record per request and
// hands it over once, when the request ends.
package telemetry

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values the conventions define for gen_ai.operation.name and
// gen_ai.token.type.
const (
	OperationChat           = "chat"
	OperationTextCompletion = "text_completion"
	OperationEmbeddings     = "embeddings"
	// OperationRerank is not in the conventions (yet): named as vLLM's API.
	OperationRerank = "rerank"
	// OperationGenerateContent is the conventions' multimodal content
	// generation, which the Images API's generations and edits are (the
	// conventions name no image operation; a listed value that applies
	// must be used).
	OperationGenerateContent = "generate_content"
	// The audio operations are not in the conventions either (their
	// well-known values are chat, embeddings, text_completion,
	// generate_content and the agent ones): named after the OpenAI
	// endpoints, in the conventions' singular.
	OperationTranscription = "transcription"
	OperationTranslation   = "translation"
	OperationSpeech        = "speech"
	tokenInput             = "input"
	tokenOutput            = "output"
	// Other replaces a model name the config does not know, so clients
	// cannot grow label cardinality.
	Other = "other"
)

// Bucket boundaries recommended by the GenAI metric conventions.
var (
	tokenBuckets    = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
	durationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	ttftBuckets     = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0}
	tpotBuckets     = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5}
	// phaseBuckets cover ext_proc answers from 50 µs to the 2 s message timeout.
	phaseBuckets = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2}
	waitBuckets  = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}
)

// Phases of an ext_proc stream, for the phase latency histogram.
const (
	PhaseRequestHeaders = iota
	PhaseRequestBody
	PhaseResponseHeaders
	PhaseResponseBody
	PhaseOther
	phaseCount
)

var phaseNames = [phaseCount]string{"request_headers", "request_body", "response_headers", "response_body", "other"}

var genAILabels = []string{"gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_response_model", "streamgate_backend"}

// Metrics are the request collectors. A nil *Metrics records nothing.
// Safe for concurrent use.
type Metrics struct {
	tokens, duration, ttft, tpot *prometheus.HistogramVec
	requests                     *prometheus.CounterVec
	cost                         *prometheus.CounterVec
	decisions                    *prometheus.CounterVec
	queueWait                    prometheus.Histogram
	active                       prometheus.Gauge
	phases                       [phaseCount]prometheus.Observer
	events                       *prometheus.CounterVec
	queueDepth                   atomic.Pointer[func() int]
}

// SetQueueDepth sets what streamgate_queue_depth reports.
func (m *Metrics) SetQueueDepth(f func() int) {
	if m != nil {
		m.queueDepth.Store(&f)
	}
}

func (m *Metrics) depth() float64 {
	if f := m.queueDepth.Load(); f != nil {
		return float64((*f)())
	}
	return 0
}

// NewMetrics registers the request metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		tokens: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gen_ai_client_token_usage", Help: "Number of input and output tokens used, as the backend reported them ({token}).",
			Buckets: tokenBuckets,
		}, append(genAILabels[:4:4], "gen_ai_token_type", "streamgate_backend")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gen_ai_server_request_duration_seconds", Help: "Generative AI request duration: request start to the last response byte.",
			Buckets: durationBuckets,
		}, append(genAILabels[:5:5], "error_type")),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gen_ai_server_time_to_first_token_seconds", Help: "Time to the first response body chunk of successful responses.",
			Buckets: ttftBuckets,
		}, genAILabels),
		tpot: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gen_ai_server_time_per_output_token_seconds", Help: "Time per output token after the first, for successful streamed responses.",
			Buckets: tpotBuckets,
		}, genAILabels),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamgate_requests_total",
			Help: "Requests seen by the ext_proc server, by tenant, public model, backend and HTTP status (\"routed\" when forwarded and the response was not observed).",
		}, []string{"tenant", "model", "backend", "status"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamgate_cost_usd_total", Help: "Cost of the tokens backends reported and of the images they made, priced by telemetry.prices, in USD.",
		}, []string{"tenant", "model"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamgate_ratelimit_decisions_total", Help: "Admission decisions of the limiter: admitted, or the reason for refusing.",
		}, []string{"decision"}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "streamgate_queue_wait_seconds", Help: "Time a limited request spent in admission (rate check and concurrency queue).",
			Buckets: waitBuckets,
		}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamgate_extproc_streams_open", Help: "ext_proc streams open: not requests in flight (a pass-through or handed-over request ends its stream after the request body). Requests in flight are Envoy's downstream_rq_active.",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamgate_usage_events_total", Help: "Usage events by outcome: published, dropped (buffer full) or failed (sink down).",
		}, []string{"outcome"}),
	}
	phase := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "streamgate_extproc_phase_duration_seconds", Help: "Time the ext_proc server took to answer one message, by phase (includes admission waits).",
		Buckets: phaseBuckets,
	}, []string{"phase"})
	for i := range m.phases {
		m.phases[i] = phase.WithLabelValues(phaseNames[i])
	}
	for _, o := range []string{"published", "dropped", "failed"} {
		m.events.WithLabelValues(o)
	}
	// Every decision exists from the start, so rates and dashboards see 0.
	for _, d := range []string{"admitted", "rate_limited", "tenant_busy", "backend_busy", "store_unavailable", "cancelled"} {
		m.decisions.WithLabelValues(d)
	}
	depth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "streamgate_queue_depth", Help: "Requests waiting in the limiter's concurrency queue.",
	}, m.depth)
	reg.MustRegister(depth, m.tokens, m.duration, m.ttft, m.tpot, m.requests, m.cost, m.decisions, m.queueWait, m.active, phase, m.events)
	return m
}

// StreamStarted counts an open ext_proc stream; StreamEnded must follow.
func (m *Metrics) StreamStarted() {
	if m != nil {
		m.active.Inc()
	}
}

// StreamEnded counts an ext_proc stream closing.
func (m *Metrics) StreamEnded() {
	if m != nil {
		m.active.Dec()
	}
}

// Phase records how long answering one message of phase took. It does
// not allocate.
func (m *Metrics) Phase(phase int, d time.Duration) {
	if m == nil || phase < 0 || phase >= phaseCount {
		return
	}
	m.phases[phase].Observe(d.Seconds())
}

// Admission records a limiter decision and how long it took.
func (m *Metrics) Admission(decision string, wait time.Duration) {
	if m == nil {
		return
	}
	m.decisions.WithLabelValues(decision).Inc()
	m.queueWait.Observe(wait.Seconds())
}

// event counts one usage event outcome.
func (m *Metrics) event(outcome string) {
	if m != nil {
		m.events.WithLabelValues(outcome).Inc()
	}
}

// Observe records one finished request. r's labels must already be
// bounded (known models or Other).
func (m *Metrics) Observe(r *Record) {
	if m == nil {
		return
	}
	status := "routed"
	if r.Status != 0 {
		status = strconv.Itoa(r.Status)
	}
	m.requests.WithLabelValues(r.TenantLabel, r.Model, r.Backend, status).Inc()
	if r.Operation == "" || r.Status == 0 || r.Unread {
		return // not a GenAI request, or its response was not observed
	}
	errType := r.ErrorType()
	m.duration.WithLabelValues(r.Operation, r.Provider, r.Model, r.ResponseModel, r.Backend, errType).Observe(r.Duration().Seconds())
	if errType != "" {
		return
	}
	if r.UsageKnown {
		m.tokens.WithLabelValues(r.Operation, r.Provider, r.Model, r.ResponseModel, tokenInput, r.Backend).Observe(float64(r.InputTokens))
		if r.Generates() || r.OutputTokens > 0 {
			m.tokens.WithLabelValues(r.Operation, r.Provider, r.Model, r.ResponseModel, tokenOutput, r.Backend).Observe(float64(r.OutputTokens))
		}
	}
	if r.CostUSD > 0 {
		m.cost.WithLabelValues(r.TenantLabel, r.Model).Add(r.CostUSD)
	}
	if ttft, ok := r.TTFT(); ok {
		m.ttft.WithLabelValues(r.Operation, r.Provider, r.Model, r.ResponseModel, r.Backend).Observe(ttft.Seconds())
	}
	if tpot, ok := r.TimePerOutputToken(); ok {
		m.tpot.WithLabelValues(r.Operation, r.Provider, r.Model, r.ResponseModel, r.Backend).Observe(tpot.Seconds())
	}
}

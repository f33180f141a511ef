package extproc

import (
	"errors"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/budget"
	"github.com/streamgate/streamgate/extproc/ratelimit"
	"github.com/streamgate/streamgate/extproc/telemetry"
)

// Telemetry is what one config says about measuring requests. Immutable;
// built by NewTelemetry and swapped in with Server.Update.
type Telemetry struct {
	tenantLabel bool
	usage       bool
	prices      telemetry.Prices
	// imagePrices: a model has per_image prices, so every image response
	// is read (readsUsage).
	imagePrices bool
	// models are the names a response may report without collapsing to Other.
	models map[string]bool
	// providers maps a backend to its gen_ai.provider.name.
	providers map[string]string
	// tenants are the tenants the config names; others (from a client's
	// tenant header) are labelled Other.
	tenants map[string]bool
	now     func() time.Time
}

// NewTelemetry reads cfg's telemetry section.
func NewTelemetry(cfg *config.Config) *Telemetry {
	t := &Telemetry{
		tenantLabel: cfg.Telemetry.TenantLabels(), usage: cfg.Telemetry.ReadsUsage(),
		prices: telemetry.Prices(cfg.Telemetry.Prices), models: map[string]bool{}, providers: map[string]string{},
		tenants: map[string]bool{}, now: time.Now,
	}
	if a := cfg.Auth; a != nil {
		for _, tn := range a.Tenants {
			t.tenants[tn.Name] = true
		}
	}
	if l := cfg.Limits; l != nil {
		t.tenants[l.DefaultTenant] = true
		for _, tn := range l.Tenants {
			if tn.Name != config.AnyTenant {
				t.tenants[tn.Name] = true
			}
		}
	}
	for _, m := range cfg.Models {
		t.models[m.Name] = true
		for _, v := range m.Versions {
			t.models[v.UpstreamModel] = true
		}
	}
	for _, b := range cfg.Backends {
		t.providers[b.Name] = string(b.Protocol)
	}
	for _, pr := range cfg.Telemetry.Prices {
		t.imagePrices = t.imagePrices || len(pr.PerImage) > 0
	}
	return t
}

// obsState is one request's measurements. The response's usage comes
// from the request's one meter (p.meter, response.go).
type obsState struct {
	set       *Telemetry
	start     time.Time
	firstByte time.Time
	end       time.Time
	queueWait time.Duration
	decision  string
	errorType string
	sink      *telemetry.Sink
	tracer    *telemetry.Tracer
	span      telemetry.Span
	// unread: the response body passes without being read (usage off).
	unread bool
}

func (p *processor) now() time.Time {
	if p.obs.set == nil {
		return time.Now()
	}
	return p.obs.set.now()
}

// readsUsage reports whether telemetry wants every response read: all of
// them with telemetry.usage, the image endpoints' when images are priced.
func (p *processor) readsUsage() bool {
	return p.obs.set != nil && (p.obs.set.usage || p.obs.set.imagePrices && isImages(p.endpoint))
}

// obsRequestHeaders starts the request's span (under the client's trace
// context, if any).
func (p *processor) obsRequestHeaders(h *extprocsvcv3.HttpHeaders) {
	if p.obs.tracer != nil {
		var parent, state string
		for _, hv := range h.GetHeaders().GetHeaders() {
			switch hv.GetKey() {
			case contract.TraceParentHeader:
				parent = headerValue(hv)
			case contract.TraceStateHeader:
				state = headerValue(hv)
			}
		}
		p.obs.span = p.obs.tracer.Start(p.obs.start, parent, state)
	}
}

// traceHeaders propagates the request's span to the backend.
func (p *processor) traceHeaders(set []*corev3.HeaderValueOption) []*corev3.HeaderValueOption {
	if tp := p.obs.span.Traceparent(); tp != "" {
		set = append(set, header("traceparent", tp))
	}
	return set
}

// admission records the limiter's decision on this request.
func (p *processor) admission(began time.Time, err error) {
	p.obs.queueWait = p.now().Sub(began)
	p.obs.decision = "admitted"
	switch {
	case err == nil:
	case errors.Is(err, ratelimit.ErrRateLimited):
		p.obs.decision = "rate_limited"
	case errors.Is(err, ratelimit.ErrTenantBusy):
		p.obs.decision = "tenant_busy"
	case errors.Is(err, ratelimit.ErrBackendBusy):
		p.obs.decision = "backend_busy"
	case errors.Is(err, ratelimit.ErrStoreUnavailable):
		p.obs.decision = "store_unavailable"
	case errors.Is(err, budget.ErrExceeded):
		p.obs.decision = "budget_exceeded"
	default:
		p.obs.decision = "cancelled"
	}
	p.metrics.tel().Admission(p.obs.decision, p.obs.queueWait)
}

// observeBody is the pipeline's last step on the metered bytes b: it
// times the first chunk and, at the end, reports the usage to Envoy as
// dynamic metadata for the access log. Cost per chunk: one clock read at
// most.
func (p *processor) observeBody(b []byte, end bool, resp *extprocsvcv3.ProcessingResponse) {
	if p.obs.firstByte.IsZero() && len(b) > 0 {
		p.obs.firstByte = p.now()
	}
	if !end {
		return
	}
	p.obs.end = p.now()
	r := p.record()
	if !r.UsageKnown && r.FirstByte.IsZero() && r.Images == 0 {
		return
	}
	f := map[string]*structpb.Value{}
	if r.UsageKnown {
		f[contract.MetaInputTokens] = structpb.NewNumberValue(float64(r.InputTokens))
		f[contract.MetaOutputTokens] = structpb.NewNumberValue(float64(r.OutputTokens))
	}
	if r.UsageKnown || r.Images > 0 {
		f[contract.MetaCostUSD] = structpb.NewNumberValue(r.CostUSD)
	}
	if r.Images > 0 {
		f[contract.MetaImages] = structpb.NewNumberValue(float64(r.Images))
	}
	if d, ok := r.TTFT(); ok {
		f[contract.MetaTTFTMS] = structpb.NewNumberValue(float64(d.Microseconds()) / 1000)
	}
	if r.ResponseModel != "" {
		f[contract.MetaResponseModel] = structpb.NewStringValue(r.ResponseModel)
	}
	if s := p.meter.audioSeconds(); s > 0 {
		f[contract.MetaAudioSeconds] = structpb.NewNumberValue(s)
	}
	resp.DynamicMetadata = &structpb.Struct{Fields: map[string]*structpb.Value{
		contract.MetadataNamespace: structpb.NewStructValue(&structpb.Struct{Fields: f}),
	}}
}

// record gathers what is known about the request now.
func (p *processor) record() *telemetry.Record {
	set := p.obs.set
	r := &telemetry.Record{
		RequestID: p.requestID, Tenant: p.Tenant, Endpoint: pathOnly(p.path), Stream: p.info.Stream,
		Model: telemetry.Other, Start: p.obs.start, FirstByte: p.obs.firstByte, End: p.obs.end, Finished: p.now(),
		QueueWait: p.obs.queueWait, Decision: p.obs.decision, Refusal: p.obs.errorType, Unread: p.obs.unread,
	}
	switch {
	case set == nil || p.Tenant == "":
		r.TenantLabel = p.Tenant
	case !set.tenantLabel:
	case set.tenants[p.Tenant]:
		r.TenantLabel = p.Tenant
	default:
		r.TenantLabel = telemetry.Other
	}
	switch p.endpoint {
	case endpointChat, endpointMessages, endpointResponses:
		r.Operation = telemetry.OperationChat
	case endpointCompletions:
		r.Operation = telemetry.OperationTextCompletion
	case endpointEmbeddings:
		r.Operation = telemetry.OperationEmbeddings
	case endpointRerank:
		r.Operation = telemetry.OperationRerank
	case endpointImageGenerations, endpointImageEdits:
		r.Operation = telemetry.OperationGenerateContent
	case endpointTranscriptions:
		r.Operation = telemetry.OperationTranscription
	case endpointTranslations:
		r.Operation = telemetry.OperationTranslation
	case endpointSpeech:
		r.Operation = telemetry.OperationSpeech
	}
	r.Status = p.status
	r.Budgets = p.budgetWindows()
	if p.answered && r.End.IsZero() {
		r.End = r.Finished // Streamgate's own answer is complete when sent
	}
	if rt := p.route; rt != nil {
		r.Model, r.UpstreamModel, r.Backend, r.Version = rt.Model, rt.UpstreamModel, rt.Backend, rt.Version
		if h := p.cross.answeredBy(); h != nil { // a fallback of another protocol answered
			r.UpstreamModel, r.Backend = h.upstreamModel, h.backend
		}
		r.ResponseModel = r.UpstreamModel
	} else if p.info.Model != "" { // refused before routing: as the access log names it
		r.Model = p.routes.labelModel(p.info.Model)
	}
	if set != nil {
		r.Provider = set.providers[r.Backend]
	}
	u, ok, model := p.meter.usage()
	if model != "" {
		r.ResponseModel = telemetry.Other
		if set != nil && set.models[model] {
			r.ResponseModel = model
		}
	}
	if ok {
		r.UsageKnown, r.InputTokens, r.OutputTokens = true, u.Input, u.Output
		if set != nil {
			r.CostUSD = set.prices.Cost(r.Model, u.Input, u.Output)
		}
	}
	if im := p.imagesMade(); im.Count > 0 {
		r.Images = im.Count
		if set != nil {
			r.CostUSD += set.prices.ImageCost(r.Model, im.Size, im.Quality, im.Count)
		}
	}
	return r
}

// observe records the finished request in metrics and the usage sink.
func (p *processor) observe() {
	if p.path == "" {
		return
	}
	if e := p.svc.entry; e != nil { // measured from Envoy's service log; traced here
		op := ""
		if p.svc.op != nil {
			op = p.svc.op.name
		}
		status := 0
		if p.answered {
			status = p.status
		}
		p.obs.span.EndService(e.name, op, p.Tenant, p.requestID, pathOnly(p.path), status, p.obs.errorType, p.now())
		return
	}
	r := p.record()
	p.metrics.tel().Observe(r)
	p.obs.span.End(r)
	p.obs.sink.Publish(telemetry.EventOf(r))
}

func atoiOr0(s string) int {
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return n
}

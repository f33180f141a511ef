package extproc

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/ratelimit"
	"github.com/streamgate/streamgate/extproc/tokens"
)

// ErrBadTenant is a tenant header that is not a valid tenant name.
var ErrBadTenant = errors.New("invalid tenant")

// Limits is the throttling part of the ext_proc server: the limiter and
// how to count each model's tokens. Immutable after NewLimits; safe for
// concurrent use.
type Limits struct {
	cfg      *config.Limits
	limiter  *ratelimit.Limiter
	counters map[string]*tokens.Counter
	fallback *tokens.Counter
	// lastUnreadWarn is when usageUnread last logged (unix nanos).
	lastUnreadWarn atomic.Int64
}

// NewLimits builds the limiter for cfg.Limits (which must be set) with
// store for its rate buckets (nil: in memory), registering its metrics
// with reg.
func NewLimits(cfg *config.Config, store ratelimit.Store, reg prometheus.Registerer) (*Limits, error) {
	lc := cfg.Limits
	l := &Limits{cfg: lc, counters: map[string]*tokens.Counter{}}
	var err error
	if l.fallback, err = tokens.NewCounter(tokens.EncodingHeuristic, 0); err != nil {
		return nil, err
	}
	for _, tk := range lc.Tokenizers {
		c, err := tokens.NewCounter(tk.Encoding, tk.CharsPerToken)
		if err != nil {
			return nil, fmt.Errorf("cannot build tokenizer for model %s: %w", tk.Model, err)
		}
		l.counters[tk.Model] = c
	}
	if store == nil {
		store = ratelimit.NewMemoryStore(ratelimit.SystemClock{})
	}
	l.limiter = ratelimit.New(lc, store, ratelimit.SystemClock{}, ratelimit.NewMetrics(reg))
	return l, nil
}

// limitState is one request's part in the limiter.
type limitState struct {
	res     *ratelimit.Reservation
	headers ratelimit.Headers
	input   int64
	strip   bool
	meter   *tokens.StreamMeter
	body    *tokens.BodyMeter
	counter *tokens.Counter
}

// tenantFrom resolves the tenant from the configured header's value.
func (p *processor) tenantFrom(raw string) error {
	if raw == "" {
		p.Tenant = p.limits.cfg.DefaultTenant
		return nil
	}
	if !ratelimit.ValidTenant(raw) {
		return reject(ErrBadTenant, "The %s header must be 1 to 128 letters, digits or . _ - : @.", p.limits.cfg.TenantHeader)
	}
	p.Tenant = raw
	return nil
}

// responseModes asks Envoy to send this request's response headers, where
// Streamgate adds x-ratelimit-* and decides whether it reads the body.
func responseModes() *extprocv3.ProcessingMode {
	return &extprocv3.ProcessingMode{
		RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
		ResponseHeaderMode:  extprocv3.ProcessingMode_SEND,
		RequestBodyMode:     extprocv3.ProcessingMode_BUFFERED,
		ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
		RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
		ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
	}
}

// admit estimates and reserves the request. It returns the body to send
// upstream (with stream_options.include_usage added when the client
// streams without it) and whether it changed, or a refusal.
func (p *processor) admit(body []byte) ([]byte, bool, *extprocsvcv3.ProcessingResponse) {
	if p.limits == nil {
		return body, false, nil
	}
	counter := p.limits.counters[p.route.Model]
	if counter == nil {
		counter = p.limits.fallback
	}
	est := tokens.EstimateRequest(body, counter, tokens.NewBudget(p.limits.cfg.MaxExactBytes))
	out := est.MaxOutput
	if out == 0 && p.endpoint != endpointEmbeddings {
		out = p.limits.cfg.DefaultOutputTokens
	}
	began := p.now()
	res, h, err := p.limits.limiter.Admit(p.ctx, ratelimit.Request{
		Tenant: p.Tenant, Model: p.route.Model, Backend: p.route.Backend, Input: est.Input, Output: out, Hold: p.hold,
	})
	p.admission(began, err)
	st := &limitState{headers: h, input: est.Input, counter: counter}
	p.lim = st
	if err != nil {
		return nil, false, p.denied(err) // the hold is released in finish
	}
	p.hold = nil // the reservation has it
	if !res.Holds() {
		// Nothing to give back: the response passes without body processing.
		res.Finish(ratelimit.Usage{Input: est.Input, Output: out})
		return body, false, nil
	}
	st.res = res
	// Anthropic bodies have no stream_options; their translation to OpenAI
	// asks for usage itself.
	if !res.NeedsUsage() || !p.info.Stream || p.endpoint == endpointEmbeddings || p.endpoint == endpointMessages {
		return body, false, nil
	}
	if gjson.GetBytes(body, "stream_options.include_usage").Bool() {
		return body, false, nil
	}
	withUsage, err := sjson.SetBytes(body, "stream_options.include_usage", true)
	if err != nil {
		return body, false, nil // count the deltas instead
	}
	st.strip = true
	return withUsage, true, nil
}

// denied answers a refused admission with the client's message; fail adds
// Retry-After and the x-ratelimit-* headers (the refusal table's rows for
// the ratelimit sentinels).
func (p *processor) denied(err error) *extprocsvcv3.ProcessingResponse {
	var de *ratelimit.DeniedError
	if !errors.As(err, &de) {
		// The ext_proc stream ended while the request waited: nobody to answer.
		return p.fail(err)
	}
	msg := "Too many concurrent requests for this tenant; retry after " + strconv.FormatInt(de.RetryAfterSeconds(), 10) + "s."
	switch {
	case errors.Is(err, ratelimit.ErrRateLimited):
		msg = fmt.Sprintf("Rate limit reached for tenant %s (%s). Please retry after %ds.", p.Tenant, de.What, de.RetryAfterSeconds())
	case errors.Is(err, ratelimit.ErrBackendBusy), errors.Is(err, ratelimit.ErrStoreUnavailable):
		msg = "The model is overloaded; retry after " + strconv.FormatInt(de.RetryAfterSeconds(), 10) + "s."
	}
	return p.fail(&clientError{kind: de, msg: msg})
}

// rateValues yields the OpenAI-style x-ratelimit-* headers and values.
func (p *processor) rateValues(yield func(name, value string)) {
	if p.lim == nil {
		return
	}
	for _, x := range []struct {
		limit, remaining, reset string
		s                       *ratelimit.State
	}{
		{contract.RateLimitLimitRequests, contract.RateLimitRemainingRequests, contract.RateLimitResetRequests, p.lim.headers.Requests},
		{contract.RateLimitLimitTokens, contract.RateLimitRemainingTokens, contract.RateLimitResetTokens, p.lim.headers.Tokens},
	} {
		if x.s == nil {
			continue
		}
		yield(x.limit, strconv.FormatInt(x.s.Limit, 10))
		yield(x.remaining, strconv.FormatInt(x.s.Remaining, 10))
		yield(x.reset, x.s.Reset.Round(time.Millisecond).String())
	}
}

// rateHeaders renders the x-ratelimit-* headers for an immediate response.
func (p *processor) rateHeaders() []*corev3.HeaderValueOption {
	var hs []*corev3.HeaderValueOption
	p.rateValues(func(k, v string) { hs = append(hs, header(k, v)) })
	return hs
}

// limitModes is the mode override for a limited request. When nothing
// about its response needs the response headers phase (no model on this
// path is translated, telemetry does not read every response), the
// request skips that phase: the route adds the x-ratelimit-* headers from
// dynamic metadata, the status comes as an attribute with the first body
// chunk, and the body streams to Streamgate from its first chunk, so usage
// is read at the cost of the chunk round trips alone. A request that holds
// no reservation ends its ext_proc stream after the body answer (done).
func (p *processor) limitModes() *extprocv3.ProcessingMode {
	if p.routes.translates[clientAPI(p.endpoint)] || p.readsUsage() {
		return responseModes()
	}
	p.skipsResponseHeaders = true
	return processingMode(extprocv3.ProcessingMode_SKIP, extprocv3.ProcessingMode_STREAMED)
}

// onFirstResponseBody stands in for the skipped response headers phase:
// it takes the status from the message's attributes and picks how the
// body is metered: as an event stream when the client asked for a stream
// and the backend answered 200 with something other than a JSON object
// (an error answer to a stream request is JSON).
func (p *processor) onFirstResponseBody(req *extprocsvcv3.ProcessingRequest) {
	p.responseStarted = true
	attrs := req.GetAttributes()[contract.ExtProcFilter].GetFields()
	if v, ok := attrs[contract.ResponseCodeAttribute]; ok {
		p.obs.status = int(v.GetNumberValue())
	}
	if p.lim == nil || p.lim.res == nil {
		return
	}
	ok := p.obs.status == http.StatusOK || p.obs.status == 0
	if p.info.Stream && ok && !looksLikeJSON(req.GetResponseBody().GetBody()) {
		p.lim.meter = &tokens.StreamMeter{Strip: p.lim.strip, Counter: p.lim.counter}
	} else {
		p.lim.body = &tokens.BodyMeter{}
	}
	p.obs.meter, p.obs.body = p.lim.meter, p.lim.body
}

// looksLikeJSON reports whether a body starts as a JSON object.
func looksLikeJSON(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c == '{'
	}
	return false
}

// rateMetadata records the x-ratelimit-* values for the route to copy
// onto the response (contract.RateLimitHeaders).
func (p *processor) rateMetadata(f map[string]*structpb.Value) {
	p.rateValues(func(k, v string) { f[k] = structpb.NewStringValue(v) })
}

// onResponseHeaders adds x-ratelimit-* and, when a reservation is held,
// asks for the response body so usage can be read and the reservation
// released when the response ends.
func (p *processor) onResponseHeaders(h *extprocsvcv3.HttpHeaders) *extprocsvcv3.ProcessingResponse {
	resp := &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocsvcv3.HeadersResponse{}}}
	defer p.obsResponseHeaders(h, resp)
	if p.lim == nil {
		return resp
	}
	// The x-ratelimit-* headers come from the route (rateMetadata).
	if p.lim.res == nil || h.GetEndOfStream() {
		p.releaseLimits()
		return resp
	}
	if p.responseIsEventStream(h) {
		p.lim.meter = &tokens.StreamMeter{Strip: p.lim.strip, Counter: p.lim.counter}
	} else {
		p.lim.body = &tokens.BodyMeter{}
	}
	mode := responseModes()
	mode.ResponseBodyMode = extprocv3.ProcessingMode_STREAMED
	resp.ModeOverride = mode
	return resp
}

// onResponseBody reads usage as the body passes and, for streams the
// gateway asked usage for, removes the usage chunk.
func (p *processor) onResponseBody(b *extprocsvcv3.HttpBody) *extprocsvcv3.ProcessingResponse {
	br := &extprocsvcv3.BodyResponse{}
	resp := &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_ResponseBody{ResponseBody: br}}
	defer p.obsResponseBody(b, resp)
	if p.lim == nil {
		return resp
	}
	end := b.GetEndOfStream()
	switch {
	case p.lim.meter != nil:
		out, changed := p.lim.meter.Feed(b.GetBody(), end)
		if changed {
			mut := &extprocsvcv3.BodyMutation{Mutation: &extprocsvcv3.BodyMutation_Body{Body: out}}
			if len(out) == 0 {
				mut.Mutation = &extprocsvcv3.BodyMutation_ClearBody{ClearBody: true}
			}
			br.Response = &extprocsvcv3.CommonResponse{BodyMutation: mut}
		}
	case p.lim.body != nil:
		p.lim.body.Feed(b.GetBody(), end)
	}
	if end {
		p.releaseLimits()
	}
	return resp
}

// releaseLimits reconciles and releases the reservation, once: with the
// usage the backend reported, else the estimated input and the output
// tokens counted so far (streams) or reserved (a successful non-streamed
// response whose usage could not be read, or a stream the meter stopped
// reading at an oversized event: see usageUnread).
func (p *processor) releaseLimits() {
	if p.lim == nil || p.lim.res == nil {
		return
	}
	used := ratelimit.Usage{Input: p.lim.input}
	var u tokens.Usage
	var ok bool
	switch {
	case p.lim.meter != nil:
		u, ok = p.lim.meter.Usage()
		used.Output = p.lim.meter.Counted()
		if p.lim.meter.Truncated() {
			// The meter stopped at an event past its bound: what it read is
			// a floor, not the response. Charge at least the reservation.
			if ok {
				used.Input, used.Output, ok = u.Input, u.Output, false
			}
			used.Output = max(used.Output, p.lim.res.Reserved().Output)
			p.usageUnread(unreadTooLarge)
		}
	case p.lim.body != nil:
		if u, ok = p.lim.body.Usage(); !ok && p.responseSucceeded() {
			// Tokens were generated but not reported: charge what was reserved.
			used.Output = p.lim.res.Reserved().Output
			p.usageUnread(unreadReason(p.lim.body.Ended()))
		}
	}
	if ok {
		used = ratelimit.Usage{Input: u.Input, Output: u.Output}
	}
	p.lim.res.Finish(used)
	p.lim.res = nil
}

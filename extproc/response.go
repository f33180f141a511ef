package extproc

import (
	"net/http"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/tokens"
)

// meter is a request's one usage meter: an event stream's (StreamMeter),
// a whole body's (BodyMeter), Envoy's usage report (report.go), or none.
// Limits settle from it (releaseLimits) and telemetry records from it
// (record).
type meter struct {
	stream *tokens.StreamMeter
	body   *tokens.BodyMeter
	report *reportedUsage
	// responses: the body is a Responses API answer passed through
	// untranslated (set by planResponse).
	responses bool
	// images: the body is an Images API answer (set by planResponse).
	images bool
	// anthropic: the body the client gets is an Anthropic Messages answer
	// translated from a backend the meter cannot read (Bedrock).
	anthropic bool
}

// start picks the meter: strip removes the usage-only event the gateway
// asked for; c counts output deltas (nil: not counted).
func (m *meter) start(eventStream, strip bool, c *tokens.Counter) {
	if eventStream {
		m.stream = &tokens.StreamMeter{Strip: strip, Counter: c, Responses: m.responses, Images: m.images, Anthropic: m.anthropic}
		return
	}
	// An Anthropic message's usage has the Responses API's field names.
	m.body = &tokens.BodyMeter{Responses: m.responses || m.anthropic, Images: m.images}
}

// feed reads one chunk; it returns the chunk to pass on and whether it
// differs from b (the usage-only event was removed).
func (m *meter) feed(b []byte, end bool) ([]byte, bool) {
	switch {
	case m.stream != nil:
		return m.stream.Feed(b, end)
	case m.body != nil:
		m.body.Feed(b, end)
	}
	return b, false
}

// usage is what the backend reported and the model it answered with.
func (m *meter) usage() (tokens.Usage, bool, string) {
	switch {
	case m.stream != nil:
		u, ok := m.stream.Usage()
		return u, ok, m.stream.Model()
	case m.body != nil:
		u, ok := m.body.Usage()
		return u, ok, m.body.Model()
	case m.report != nil:
		return m.report.usage, m.report.found, m.report.model
	}
	return tokens.Usage{}, false, ""
}

// audioSeconds is the input audio's length an Audio API answer reported
// as its usage (whisper-1's duration), or 0.
func (m *meter) audioSeconds() float64 {
	if m.body != nil {
		return m.body.Seconds()
	}
	return 0
}

// onResponseHeaders notes the backend's status and completes the plan
// (planBody): the meter, and the body mode Envoy gets (plan.mode). A
// response without a body is settled and complete at once. A translated
// response gets the client's content type and status.
func (p *processor) onResponseHeaders(h *extprocsvcv3.HttpHeaders) *extprocsvcv3.ProcessingResponse {
	eventStream, typed := false, false
	for _, hv := range h.GetHeaders().GetHeaders() {
		switch hv.GetKey() {
		case ":status":
			p.status = atoiOr0(headerValue(hv))
		case "content-type":
			if !typed {
				eventStream, typed = strings.HasPrefix(headerValue(hv), "text/event-stream"), true
			}
		case contract.AnsweredByHeader:
			if p.cross != nil {
				p.crossAnswered(headerValue(hv))
			}
		}
	}
	if p.tx != nil {
		p.tx.streaming = p.tx.stream && p.status == http.StatusOK
		eventStream = p.tx.streaming
	}
	resp := &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocsvcv3.HeadersResponse{}}}
	if h.GetEndOfStream() {
		p.releaseLimits()
		p.obs.end = p.now()
	} else {
		p.planBody(eventStream)
	}
	if p.tx != nil {
		resp.GetResponseHeaders().Response = &extprocsvcv3.CommonResponse{HeaderMutation: p.tx.headers(p.status)}
	}
	if p.cross != nil {
		p.crossHeaders(resp)
	}
	resp.ModeOverride = p.plan.mode(atResponseHeaders)
	return resp
}

// onResponseBody runs one response body chunk (STREAMED) or the whole body
// (BUFFERED) through the pipeline: translate (p.tx), meter (the plan's
// side of the translation), settle the limits at the end, observe
// (telemetry). A readBody request first takes its status from the chunk.
func (p *processor) onResponseBody(req *extprocsvcv3.ProcessingRequest) *extprocsvcv3.ProcessingResponse {
	b := req.GetResponseBody()
	in, end := b.GetBody(), b.GetEndOfStream()
	if p.plan.read == readBody && p.plan.body == bodyNone {
		status := p.status
		if v, ok := req.GetAttributes()[contract.ExtProcFilter].GetFields()[contract.ResponseCodeAttribute]; ok {
			status = int(v.GetNumberValue())
		}
		p.planFirstBody(status, in)
	}
	br := &extprocsvcv3.BodyResponse{}
	resp := &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_ResponseBody{ResponseBody: br}}
	out, status := in, p.status
	if p.tx != nil {
		out, status = p.tx.body(in, end, p.status)
	}
	metered := out
	if p.plan.side == meterBackend {
		metered = in
	}
	cut, changed := p.meter.feed(metered, end)
	switch {
	case changed && p.plan.side == meterClient:
		mut := &extprocsvcv3.BodyMutation{Mutation: &extprocsvcv3.BodyMutation_Body{Body: cut}}
		if len(cut) == 0 {
			mut.Mutation = &extprocsvcv3.BodyMutation_ClearBody{ClearBody: true}
		}
		br.Response = &extprocsvcv3.CommonResponse{BodyMutation: mut}
	case p.tx != nil:
		br.Response = &extprocsvcv3.CommonResponse{BodyMutation: &extprocsvcv3.BodyMutation{Mutation: &extprocsvcv3.BodyMutation_Body{Body: out}}}
	}
	if p.tx != nil && status != p.status && !(p.status == 529 && status == http.StatusServiceUnavailable) {
		br.Response.HeaderMutation = &extprocsvcv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{header(":status", itoa(status))}}
	}
	if end {
		p.releaseLimits()
	}
	p.observeBody(metered, end, resp)
	return resp
}

// onResponseTrailers ends a gRPC call whose admission held a slot.
func (p *processor) onResponseTrailers() *extprocsvcv3.ProcessingResponse {
	p.releaseLimits()
	return &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocsvcv3.TrailersResponse{}}}
}

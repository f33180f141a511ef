package extproc

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/streamgate/streamgate/extproc/translate"
)

// translation is the state of one request whose client API differs from
// its backend's protocol. The request body is rewritten when it is read;
// the response is rewritten chunk by chunk (streams) or whole (everything
// else), which needs the response phases Envoy skips by default.
type translation struct {
	tr     translate.Translator
	stream bool // the client asked for a stream
	status int  // the backend's response status
	// streaming is set when the response body is an event stream that
	// passes through tr.Stream chunk by chunk.
	streaming bool
	out       []byte // reused for each translated chunk
}

// noteTranslations records the client APIs a backend of protocol p serves
// through a translation.
func (r *Routes) noteTranslations(p translate.Protocol) {
	for _, c := range []translate.Client{translate.ClientChat, translate.ClientCompletions, translate.ClientEmbeddings, translate.ClientMessages} {
		if translate.Supported(c, p) {
			r.translates[c] = true
		}
	}
}

// clientAPI is the API a client speaks on endpoint e.
func clientAPI(e endpoint) translate.Client {
	switch e {
	case endpointChat:
		return translate.ClientChat
	case endpointCompletions:
		return translate.ClientCompletions
	case endpointEmbeddings:
		return translate.ClientEmbeddings
	case endpointMessages:
		return translate.ClientMessages
	}
	return translate.ClientUnknown
}

// processingMode is the filter's mode with the response phases set.
func processingMode(responseHeaders extprocv3.ProcessingMode_HeaderSendMode, responseBody extprocv3.ProcessingMode_BodySendMode) *extprocv3.ProcessingMode {
	return &extprocv3.ProcessingMode{
		RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
		RequestBodyMode:     extprocv3.ProcessingMode_BUFFERED,
		RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
		ResponseHeaderMode:  responseHeaders,
		ResponseBodyMode:    responseBody,
		ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
	}
}

// translationOverride returns the mode override for the request headers
// response: when some model reachable from this path needs translation, ask
// Envoy for the response headers. Envoy honours mode_override only on
// headers responses, and the backend is known only after the body, so the
// body mode is decided later, on the response headers. Requests whose
// backend turns out to speak the client's API pay one round trip at
// response headers and none per chunk.
func (p *processor) translationOverride() *extprocv3.ProcessingMode {
	if !p.routes.translates[clientAPI(p.endpoint)] {
		return nil
	}
	return processingMode(extprocv3.ProcessingMode_SEND, extprocv3.ProcessingMode_NONE)
}

// translateRequest rewrites the buffered request body for a backend that
// speaks another protocol, or refuses it with a 400 in the client's shape.
// set holds the routing headers already chosen.
func (p *processor) translateRequest(body []byte, route *Route, set []*corev3.HeaderValueOption) *extprocsvcv3.ProcessingResponse {
	c, proto := clientAPI(p.endpoint), translate.Protocol(route.Protocol)
	tr, err := translate.New(c, proto, translate.Options{Model: route.UpstreamModel, DefaultMaxTokens: route.DefaultMaxTokens})
	if err != nil {
		return p.fail(reject(ErrUnsupported, "The model `%s` cannot be used with the %s API.", route.Model, c))
	}
	req, err := tr.Request(body)
	if err != nil {
		var re *translate.RequestError
		if errors.As(err, &re) {
			return p.fail(reject(ErrUnsupported, "%s", re.Msg))
		}
		return p.fail(err)
	}
	p.tx = &translation{tr: tr, stream: req.Stream}
	set = append(set, header(":path", req.Path), header("content-length", itoa(len(req.Body))))
	if h, ok := p.auth.Upstream(route.Backend); ok {
		set = append(set, header(h.Name, h.Value))
	}
	for _, h := range req.Headers {
		set = append(set, header(h[0], h[1]))
	}
	if route.Shaping != nil {
		set = append(set, route.Shaping.headers...)
	}
	return &extprocsvcv3.ProcessingResponse{DynamicMetadata: p.requestMetadata(), Response: &extprocsvcv3.ProcessingResponse_RequestBody{
		RequestBody: &extprocsvcv3.BodyResponse{Response: &extprocsvcv3.CommonResponse{
			ClearRouteCache: true,
			BodyMutation:    &extprocsvcv3.BodyMutation{Mutation: &extprocsvcv3.BodyMutation_Body{Body: req.Body}},
			// The translator reads the response: it must not be compressed.
			HeaderMutation: &extprocsvcv3.HeaderMutation{SetHeaders: set, RemoveHeaders: []string{"accept-encoding"}},
		}},
	}}
}

// onTranslatedResponseHeaders answers response headers: the limits layer
// (onResponseHeaders) first, then, for a translated request, the client's
// content type and the body mode: chunk by chunk (STREAMED) for a
// successful stream, whole (BUFFERED) for anything else.
func (p *processor) onTranslatedResponseHeaders(h *extprocsvcv3.HttpHeaders) *extprocsvcv3.ProcessingResponse {
	if p.tx != nil {
		for _, hv := range h.GetHeaders().GetHeaders() {
			if hv.GetKey() == ":status" {
				p.tx.status, _ = strconv.Atoi(headerValue(hv))
			}
		}
		p.tx.streaming = p.tx.stream && p.tx.status == http.StatusOK
	}
	resp := p.onResponseHeaders(h)
	hr := resp.GetResponseHeaders()
	if p.tx == nil || hr == nil {
		return resp
	}
	contentType, mode := "application/json", extprocv3.ProcessingMode_BUFFERED
	if p.tx.streaming {
		contentType, mode = "text/event-stream", extprocv3.ProcessingMode_STREAMED
	}
	if hr.Response == nil {
		hr.Response = &extprocsvcv3.CommonResponse{}
	}
	if hr.Response.HeaderMutation == nil {
		hr.Response.HeaderMutation = &extprocsvcv3.HeaderMutation{}
	}
	hm := hr.Response.HeaderMutation
	hm.SetHeaders = append(hm.SetHeaders, header("content-type", contentType))
	if p.tx.status == 529 { // Anthropic's "overloaded"; OpenAI clients know 503
		hm.SetHeaders = append(hm.SetHeaders, header(":status", "503"))
	}
	hm.RemoveHeaders = append(hm.RemoveHeaders, "content-length")
	if !h.GetEndOfStream() {
		resp.ModeOverride = processingMode(extprocv3.ProcessingMode_SEND, mode)
	}
	return resp
}

// responseIsEventStream tells the limits layer whether the body the client
// gets is an event stream: for translated requests, whether the translator
// streams; otherwise the response's content type.
func (p *processor) responseIsEventStream(h *extprocsvcv3.HttpHeaders) bool {
	if p.tx != nil {
		return p.tx.streaming
	}
	for _, hv := range h.GetHeaders().GetHeaders() {
		if hv.GetKey() == "content-type" {
			return strings.HasPrefix(headerValue(hv), "text/event-stream")
		}
	}
	return false
}

// translatedResponseBody translates one response body chunk (STREAMED) or
// the whole body (BUFFERED), letting the limits layer meter usage on the
// side that speaks OpenAI: the client's bytes, or for Anthropic clients the
// backend's.
func (p *processor) translatedResponseBody(b *extprocsvcv3.HttpBody) *extprocsvcv3.ProcessingResponse {
	if p.tx == nil {
		return p.onResponseBody(b)
	}
	end := b.GetEndOfStream()
	status := p.tx.status
	translate := func(in []byte) []byte {
		if p.tx.streaming {
			p.tx.out = p.tx.tr.Stream(p.tx.out[:0], in, end)
			return p.tx.out
		}
		var out []byte
		status, out = p.tx.tr.Response(p.tx.status, in)
		return out
	}
	var resp *extprocsvcv3.ProcessingResponse
	var out []byte
	meterBackend := p.endpoint == endpointMessages
	if meterBackend {
		resp = p.onResponseBody(b)
		out = translate(b.GetBody())
	} else {
		out = translate(b.GetBody())
		resp = p.onResponseBody(&extprocsvcv3.HttpBody{Body: out, EndOfStream: end})
	}
	br := resp.GetResponseBody()
	if br == nil {
		return resp
	}
	if br.Response == nil {
		br.Response = &extprocsvcv3.CommonResponse{}
	}
	// Metering the client's bytes may have cut the usage chunk the gateway
	// asked for: its mutation already holds the translated bytes.
	if br.Response.BodyMutation == nil || meterBackend {
		br.Response.BodyMutation = &extprocsvcv3.BodyMutation{Mutation: &extprocsvcv3.BodyMutation_Body{Body: out}}
	}
	if status != p.tx.status && !(p.tx.status == 529 && status == http.StatusServiceUnavailable) {
		br.Response.HeaderMutation = &extprocsvcv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{header(":status", itoa(status))}}
	}
	return resp
}

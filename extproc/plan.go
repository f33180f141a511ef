package extproc

import (
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/streamgate/streamgate/config"
)

// responsePlan is what one request's response needs, decided once and
// read by every response phase (response.go). The request headers decide
// which response phases Envoy sends (read); once the request body is
// handled the plan is completed (translate, side, settle, strip, report);
// the response headers, when Envoy sends them, choose how the body comes
// (body). Processing-mode overrides come from the plan alone (mode).
type responsePlan struct {
	// read is what of the response Envoy sends ext_proc, asked for at the
	// request headers (the only answer before the response whose mode
	// override Envoy honours).
	read responseRead
	// usage: telemetry reads the usage of every successful response.
	usage bool
	// translate: the backend speaks another API (p.tx holds the
	// translator); side is the side of the translation the meter reads.
	translate bool
	side      meterSide
	// settle: the limits hold a reservation settled from the usage read.
	settle bool
	// strip: the gateway added stream_options.include_usage (askUsage),
	// so the usage-only event is removed before the client sees it: by
	// the strip filter where Envoy reads the usage (report), else here.
	strip bool
	// report: Envoy reads the response's usage; the request is handed
	// over to its usage report (report.go) when the body answer goes out.
	report bool
	// body is how the response body comes, chosen at the response headers
	// (or, for read == readBody, by the first chunk).
	body bodyRead
}

// responseRead is which response phases a request asks Envoy for.
type responseRead uint8

const (
	// readNone: nothing (HTTP pass-through); the ext_proc stream ends with
	// the body answer, so it holds no goroutine while tokens flow.
	readNone responseRead = iota
	// readHeaders: the response headers, where the body mode is chosen.
	readHeaders
	// readBody: no response headers; the body STREAMED from its first
	// chunk, which carries the status as an attribute. For a limited
	// request whose response nothing else reads: usage costs the chunk
	// round trips alone, and the x-ratelimit-* headers come from the route.
	readBody
	// readGRPC: a routed gRPC call; messages flow without ext_proc.
	readGRPC
	// readGRPCTrailers: a gRPC call holding a limits slot; its response
	// trailers (the call's end) release it.
	readGRPCTrailers
	// readRealtime: an admitted Realtime WebSocket session; frames flow
	// without ext_proc and the stream's end (the session's) releases its
	// slot (realtime.go).
	readRealtime
)

// bodyRead is how the response body comes to ext_proc.
type bodyRead uint8

const (
	bodyNone     bodyRead = iota // not at all
	bodyStreamed                 // chunk by chunk
	bodyBuffered                 // whole (a translated non-streamed answer)
)

// meterSide is the side of a translation the meter reads: the one that
// speaks OpenAI, whose usage the meters understand.
type meterSide uint8

const (
	meterClient  meterSide = iota // the bytes the client gets
	meterBackend                  // the backend's bytes (a translated /v1/messages)
)

// planPhase is an ext_proc answer that may carry a mode override.
type planPhase uint8

const (
	atRequestHeaders planPhase = iota
	atResponseHeaders
)

// The mode overrides a plan gives Envoy. Shared and never modified.
var (
	modeResponseHeaders = processingMode(extprocv3.ProcessingMode_SEND, extprocv3.ProcessingMode_NONE)
	modeBodyOnly        = processingMode(extprocv3.ProcessingMode_SKIP, extprocv3.ProcessingMode_STREAMED)
	modeStreamed        = processingMode(extprocv3.ProcessingMode_SEND, extprocv3.ProcessingMode_STREAMED)
	modeBuffered        = processingMode(extprocv3.ProcessingMode_SEND, extprocv3.ProcessingMode_BUFFERED)
)

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

// mode is the one place a processing-mode override comes from: the
// override the answer at phase at carries under plan pl, or nil to keep
// the filter's (or the earlier) mode. The result is shared: never modify it.
func (pl *responsePlan) mode(at planPhase) *extprocv3.ProcessingMode {
	if at == atResponseHeaders {
		switch pl.body {
		case bodyStreamed:
			return modeStreamed
		case bodyBuffered:
			return modeBuffered
		}
		return nil
	}
	switch pl.read {
	case readHeaders:
		return modeResponseHeaders
	case readBody:
		return modeBodyOnly
	case readGRPC:
		return grpcStreamMode
	case readGRPCTrailers:
		return grpcHeldMode
	case readRealtime:
		return realtimeMode
	}
	return nil
}

// endsAtRequestBody reports whether the ext_proc stream ends with the
// body answer: nothing of the response was asked for (the pass-through
// path), it is handed over to its usage report, or a limited request that
// holds nothing has no use for the body it asked for.
func (pl *responsePlan) endsAtRequestBody() bool {
	return pl.read == readNone || pl.report || pl.read == readBody && !pl.settle
}

// planRequestHeaders decides what the request headers can: which response
// phases Envoy sends. The backend is known only after the body, so this
// reads the config: limits on, a model on this path translated, telemetry
// reading usage. Where Envoy reads usage, nothing on this path is
// translated and no concurrency cap may hold a slot, the response is
// Envoy's alone (readNone): a slot must be freed when the response ends,
// which only the main stream's end tells at once (Envoy's report comes up
// to a flush interval later). Otherwise a limited
// request nothing else needs the response of skips the response headers
// (readBody); any other that needs something reads them; the rest pass
// through.
func (p *processor) planRequestHeaders() {
	translates := p.routes.translates[clientAPI(p.endpoint)]
	p.plan.usage = p.readsUsage()
	switch {
	case p.endpoint == endpointSpeech:
		p.plan.read, p.plan.usage = speechRead(p.limits), false
	case p.envoyReads && !translates && envoyReadsUsageOf(p.endpoint) && (p.limits == nil || !p.limits.capsConcurrency):
	case p.limits != nil && !translates && !p.plan.usage:
		p.plan.read = readBody
	case p.limits != nil || translates || p.plan.usage:
		p.plan.read = readHeaders
	}
}

// askUsage is the one include_usage decision: a streamed chat or
// completions request whose usage is read (limits settle by it, or
// telemetry reads it) and that lacks stream_options.include_usage gets it,
// so the backend reports exact token counts; the plan then strips the
// usage chunk from the response. Anthropic bodies have no stream_options;
// their translation to OpenAI asks for usage itself. On a body it cannot
// edit, the stream's deltas are counted instead.
func (p *processor) askUsage(body []byte) ([]byte, bool) {
	needs := p.plan.usage || p.lim.needsUsage()
	if !needs || !p.info.Stream || !generates(p.endpoint) || p.endpoint == endpointMessages || p.endpoint == endpointResponses || p.up != nil {
		return body, false
	}
	if gjson.GetBytes(body, "stream_options.include_usage").Bool() {
		return body, false
	}
	out, err := sjson.SetBytes(body, "stream_options.include_usage", true)
	if err != nil {
		return body, false
	}
	p.plan.strip = true
	return out, true
}

// envoyReadsUsageOf reports whether Envoy's AI protocol manager reads the
// usage of responses on e: chat completions and Anthropic messages. The
// others (embeddings, legacy completions) are metered here, once per body.
func envoyReadsUsageOf(e endpoint) bool {
	return e == endpointChat || e == endpointMessages
}

// planResponse completes the plan once the request body is handled (after
// admission, askUsage and the choice of translation): the meter's side,
// whether limits settle from the response, and whether Envoy reads its
// usage, which hands it over to the usage report (Server.Process parks it
// under reportKey just before the body answer goes out). A request holding
// concurrency slots stays: the main stream's end frees them at once.
func (p *processor) planResponse() {
	pl := &p.plan
	pl.settle = p.lim != nil && p.lim.res != nil
	p.planTranslation()
	p.meter.images = isImages(p.endpoint)
	// A cross request (cross.go) learns at the response headers whether
	// its answer is translated: it stays.
	pl.report = p.reports != nil && p.envoyReads && envoyReadsUsageOf(p.endpoint) && !pl.translate && p.cross == nil && (pl.settle || pl.usage) &&
		!(p.lim != nil && p.lim.res != nil && p.lim.res.HoldsSlots())
	if pl.report {
		p.reportKey = p.reports.newKey()
	}
}

// planTranslation sets the parts of the plan a translation decides (p.tx,
// or none): whether the response is translated, the side the meter reads
// and what it reads. A cross request runs it again once it knows which
// backend answered (crossAnswered).
func (p *processor) planTranslation() {
	pl := &p.plan
	pl.translate, pl.side, p.meter.anthropic = p.tx != nil, meterClient, false
	// chained: Responses translated through Chat Completions to another
	// protocol (translate/chain.go); the Responses events the client gets
	// carry the usage.
	chained := pl.translate && p.endpoint == endpointResponses && p.tx.proto != config.ProtocolOpenAI
	switch {
	case pl.translate && p.endpoint == endpointMessages && p.tx.proto != config.ProtocolOpenAI:
		// Bedrock's frames and Gemini's events are not metered; the Anthropic
		// events made of them are (Claude on Vertex AI's are passed as they
		// are, and metered the same way).
		p.meter.anthropic = true
	case chained:
	case pl.translate && (p.endpoint == endpointMessages || p.endpoint == endpointResponses):
		pl.side = meterBackend
	}
	p.meter.responses = p.endpoint == endpointResponses && (!pl.translate || chained)
}

// planBody completes the plan at the response headers of a response with
// a body: the one meter (limits settle, or telemetry reads a successful
// response) and how the body comes. eventStream says whether the body the
// client gets is an event stream.
func (p *processor) planBody(eventStream bool) {
	ok := p.status >= 200 && p.status < 300
	switch {
	case p.plan.settle:
		p.meter.start(eventStream, p.plan.strip, p.lim.counter)
		p.plan.body = bodyStreamed
	case p.plan.usage && ok:
		p.meter.start(eventStream, p.plan.strip, nil)
		p.plan.body = bodyStreamed
	default:
		// A successful body that nobody reads has no known end.
		p.obs.unread = ok
	}
	if p.tx != nil {
		p.plan.body = bodyBuffered
		if p.tx.streaming {
			p.plan.body = bodyStreamed
		}
	}
}

// planFirstBody stands in for the response headers of a readBody request,
// on its first body chunk: the status comes as the response.code
// attribute, and a held reservation is metered as an event stream when
// the client asked for a stream and the backend answered 200 (or an
// unknown status) with something other than a JSON object (an error
// answer to a stream request is JSON).
func (p *processor) planFirstBody(status int, first []byte) {
	p.plan.body = bodyStreamed
	p.status = status
	if !p.plan.settle || p.endpoint == endpointSpeech {
		return
	}
	ok := status == 200 || status == 0
	p.meter.start(p.info.Stream && ok && !looksLikeJSON(first), p.plan.strip, p.lim.counter)
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

package extproc

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

// realtimePath is the OpenAI Realtime API's WebSocket endpoint.
const realtimePath = contract.RealtimePath

// Headers of a WebSocket upgrade request.
const (
	headerUpgrade     = contract.UpgradeHeader
	headerWSProtocol  = contract.WebSocketProtocolHeader
	realtimeKeyPrefix = "openai-insecure-api-key."
)

// realtimeMode is the processing mode of an admitted realtime session:
// no frame goes to ext_proc (they pass untouched both ways, with no round
// trip and no buffering). Envoy closes an ext_proc stream as soon as no
// phase is left to send; asking for the request trailers, which it can
// only rule out when the client's side of the session ends, keeps the
// stream open until then (or until the session is reset). Its end is
// when finish releases the session's limits slot, once.
var realtimeMode = &extprocv3.ProcessingMode{
	RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
	ResponseHeaderMode:  extprocv3.ProcessingMode_SKIP,
	RequestBodyMode:     extprocv3.ProcessingMode_NONE,
	ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
	RequestTrailerMode:  extprocv3.ProcessingMode_SEND,
	ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
}

// upgradeRequest is what the request headers of a WebSocket upgrade carry
// beyond what every request reads.
type upgradeRequest struct {
	upgrade   string   // the Upgrade header ("" when absent)
	protocols []string // Sec-WebSocket-Protocol values, as sent
}

// websocket reports whether the request asks for a WebSocket upgrade.
func (u upgradeRequest) websocket() bool { return strings.EqualFold(u.upgrade, "websocket") }

// realtimeKey splits the subprotocol-carried API key the OpenAI clients
// send (openai-insecure-api-key.<key>) from the other subprotocols. It
// returns the keys found (zero or more) and the header value to send
// upstream without them ("" when nothing is left).
func realtimeKey(protocols []string) (keys []string, rest string) {
	kept := make([]string, 0, 4)
	for _, v := range protocols {
		for item := range strings.SplitSeq(v, ",") {
			item = strings.TrimSpace(item)
			if k, ok := strings.CutPrefix(item, realtimeKeyPrefix); ok {
				keys = append(keys, k)
			} else if item != "" {
				kept = append(kept, item)
			}
		}
	}
	return keys, strings.Join(kept, ", ")
}

// onRealtimeRequestHeaders authenticates, authorizes, limits and routes a
// Realtime WebSocket session from its upgrade request alone (it has no
// body), then lets the frames pass untouched. The model is the `model`
// query parameter; the session counts as one request and holds one
// concurrency slot for its whole life. Refusals are HTTP errors in the
// OpenAI shape, sent before the upgrade.
func (p *processor) onRealtimeRequestHeaders(h *extprocsvcv3.HttpHeaders, method, path string, up upgradeRequest, tenant string, strip, authz, apiKey []string) *extprocsvcv3.ProcessingResponse {
	if path != realtimePath {
		// Envoy upgrades any route; only the Realtime endpoint may be.
		p.endpoint = endpointFor(path)
		return p.fail(reject(ErrMethod, "WebSocket upgrades are served on %s only, not on %s.", realtimePath, clip(path, maxEchoedPath)))
	}
	p.endpoint = endpointRealtime
	keys, protocols := realtimeKey(up.protocols)
	apiKey = append(apiKey, keys...)
	if err := p.authenticate(authz, apiKey, realtimePath); err != nil {
		return p.fail(err)
	}
	if method != http.MethodGet || !up.websocket() {
		return p.fail(reject(ErrMethod, "Connect to %s with a WebSocket upgrade (GET, Upgrade: websocket).", realtimePath))
	}
	model := realtimeModel(p.path)
	if model == "" {
		return p.fail(reject(ErrMissingModel, "You must provide a model query parameter (%s?model=...).", realtimePath))
	}
	if err := p.authorizeModel(model); err != nil {
		return p.fail(err)
	}
	if err := p.authorizePin(); err != nil {
		return p.fail(err)
	}
	route, err := p.routes.Pick(model, p.pin, nil)
	if err != nil {
		return p.fail(err)
	}
	if err := p.checkEndpoint(route); err != nil {
		return p.fail(err)
	}
	if route.Protocol != config.ProtocolOpenAI || route.Cross != nil { // a session cannot fail over across protocols
		return p.fail(reject(ErrUnsupported, "The model `%s` is not served over the Realtime API on this gateway.", model))
	}
	p.route, p.info.Model, p.info.Stream = route, model, true
	// A session is admitted as a gRPC call is: one request, no tokens, a
	// concurrency slot held until the ext_proc stream ends (finish).
	if err := p.admitGRPC(tenant); err != nil {
		return p.denied(err)
	}
	p.plan.read = readRealtime
	p.obsRequestHeaders(h)
	return &extprocsvcv3.ProcessingResponse{
		Response: &extprocsvcv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocsvcv3.HeadersResponse{
			Response: &extprocsvcv3.CommonResponse{HeaderMutation: p.realtimeHeaders(route, strip, protocols, len(authz)+len(apiKey) > 0), ClearRouteCache: true},
		}},
		ModeOverride:    p.plan.mode(atRequestHeaders),
		DynamicMetadata: p.requestMetadata(),
	}
}

// realtimeHeaders is the upgrade request's header mutation: the client's
// credentials (headers and the key subprotocol) go, the backend's own
// credential, the route and the verified model name come, and the
// session's path carries the upstream model name.
func (p *processor) realtimeHeaders(route *Route, strip []string, protocols string, hasCredential bool) *extprocsvcv3.HeaderMutation {
	strip = slices.DeleteFunc(strip, func(k string) bool { return k == contract.ModelHeader })
	m := p.requestHeaderMutation(strip, hasCredential)
	if m == nil {
		m = &extprocsvcv3.HeaderMutation{}
	}
	if protocols == "" {
		m.RemoveHeaders = append(m.RemoveHeaders, headerWSProtocol)
	} else {
		m.SetHeaders = append(m.SetHeaders, header(headerWSProtocol, protocols))
	}
	m.SetHeaders = append(m.SetHeaders, header(contract.BackendHeader, route.Cluster), header(contract.VersionHeader, route.Version),
		header(contract.ModelHeader, route.Model), header(":path", realtimePath+"?model="+url.QueryEscape(route.UpstreamModel)))
	m.SetHeaders = p.traceHeaders(m.SetHeaders)
	if h, ok := p.auth.Upstream(route.Backend); ok {
		// Set, never both removed and set.
		m.RemoveHeaders = slices.DeleteFunc(m.RemoveHeaders, func(k string) bool { return k == h.Name })
		m.SetHeaders = append(m.SetHeaders, header(h.Name, h.Value))
	}
	return m
}

// realtimeModel reads the model query parameter of a request path; ""
// when absent or malformed.
func realtimeModel(path string) string {
	_, query, _ := strings.Cut(path, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return ""
	}
	return q.Get("model")
}

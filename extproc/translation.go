package extproc

import (
	"errors"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc/translate"
)

// translation is the state of one request whose client API differs from
// its backend's protocol. The request body is rewritten when it is read;
// the response is rewritten chunk by chunk (streams) or whole (everything
// else), which needs the response phases Envoy skips by default.
type translation struct {
	tr     translate.Translator
	stream bool // the client asked for a stream
	// streaming is set when the response body is an event stream that
	// passes through tr.Stream chunk by chunk.
	streaming bool
	out       []byte // reused for each translated chunk
	// proto is the protocol of the backend whose answer is translated.
	proto config.Protocol
}

// noteTranslations records the client APIs a backend of protocol p serves
// through a translation, among the endpoints a model enables.
func (r *Routes) noteTranslations(p translate.Protocol, enabled endpointSet) {
	for i := range apiEndpoints {
		if c := apiEndpoints[i].client; enabled.has(apiEndpoints[i].e) && translate.Supported(c, p) {
			r.translates[c] = true
		}
	}
}

// native reports whether route's backend serves the client's API as is.
func (p *processor) native(route *Route) bool {
	if p.endpoint == endpointResponses && route.NativeResponses {
		return true
	}
	return translate.Native(clientAPI(p.endpoint), route.wire())
}

// allServeResponses reports whether every backend of a failover chain
// serves the Responses API natively (responses_api).
func allServeResponses(cfg *config.Config, chain []string) bool {
	for _, name := range chain {
		if b := cfg.Backend(name); b == nil || !b.ResponsesAPI {
			return false
		}
	}
	return len(chain) > 0
}

// translateRequest rewrites the buffered request body for a backend that
// speaks another protocol, or refuses it with a 400 in the client's shape.
// set holds the routing headers already chosen.
func (p *processor) translateRequest(body []byte, route *Route, set []*corev3.HeaderValueOption) *extprocsvcv3.ProcessingResponse {
	c, proto := clientAPI(p.endpoint), route.wire()
	tr, err := translate.New(c, proto, translate.Options{Model: route.UpstreamModel, PublicModel: route.Model, DefaultMaxTokens: route.DefaultMaxTokens, BedrockInvoke: route.BedrockInvoke})
	if err != nil {
		return p.fail(reject(ErrUnsupported, "The model `%s` cannot be used with the %s API.", route.Model, c))
	}
	req, err := tr.Request(body)
	if err != nil {
		var re *translate.RequestError
		if errors.As(err, &re) {
			kind := ErrUnsupported
			if errors.Is(err, translate.ErrStateful) {
				kind = ErrStateful
			}
			return p.fail(reject(kind, "%s", re.Msg))
		}
		return p.fail(err)
	}
	p.tx = &translation{tr: tr, stream: req.Stream, proto: route.Protocol}
	p.planResponse()
	path := req.Path
	if route.AzureAPIVersion != "" {
		path = azurePath(path, route)
	}
	if route.VertexProject != "" {
		path = translate.VertexPath(path, route.VertexProject, route.VertexLocation)
	}
	set = append(set, header(":path", path), header("content-length", itoa(len(req.Body))))
	if h, ok := p.auth.Upstream(route.Backend); ok {
		set = append(set, header(h.Name, h.Value))
	}
	for _, h := range req.Headers {
		set = append(set, header(h[0], h[1]))
	}
	set, refused := p.signUpstream(set, route, path, req.Body)
	if refused != nil {
		return refused
	}
	if route.Shaping != nil {
		set = append(set, route.Shaping.headers...)
	}
	// The translator reads the response: it must not be compressed. A
	// signed request carries the gateway's authorization alone (removals
	// come before the set headers).
	remove := []string{"accept-encoding"}
	if route.Protocol == config.ProtocolBedrock {
		remove = append(remove, "authorization")
	}
	return &extprocsvcv3.ProcessingResponse{DynamicMetadata: p.requestMetadata(), Response: &extprocsvcv3.ProcessingResponse_RequestBody{
		RequestBody: &extprocsvcv3.BodyResponse{Response: &extprocsvcv3.CommonResponse{
			ClearRouteCache: true,
			BodyMutation:    &extprocsvcv3.BodyMutation{Mutation: &extprocsvcv3.BodyMutation_Body{Body: req.Body}},
			HeaderMutation:  &extprocsvcv3.HeaderMutation{SetHeaders: set, RemoveHeaders: remove},
		}},
	}}
}

// headers is the header mutation of a translated response's headers
// answer: the client's content type (an event stream when the translator
// streams, else JSON), no content-length (the body changes size), and
// Anthropic's 529 "overloaded" as the 503 OpenAI clients know.
func (t *translation) headers(status int) *extprocsvcv3.HeaderMutation {
	contentType := "application/json"
	if t.streaming {
		contentType = "text/event-stream"
	}
	hm := &extprocsvcv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{header("content-type", contentType)}}
	if status == 529 {
		hm.SetHeaders = append(hm.SetHeaders, header(":status", "503"))
	}
	hm.RemoveHeaders = []string{"content-length"}
	return hm
}

// body translates one response body chunk of a stream, or the whole
// body of anything else; status is the backend's. It returns the
// client's bytes and status.
func (t *translation) body(in []byte, end bool, status int) ([]byte, int) {
	if t.streaming {
		t.out = t.tr.Stream(t.out[:0], in, end)
		return t.out, status
	}
	status, out := t.tr.Response(status, in)
	return out, status
}

package extproc

import (
	"errors"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/translate"
)

// A request whose failover chain mixes protocols (Route.Cross) is handled
// in two places. The main filter (this file) does everything a request
// needs once: authentication, policy, admission, and a check that every
// backend of the chain can carry the request (refused here, before
// anything is sent, when one cannot); it sends the client's body on in the
// client's API. Envoy's router then tries the chain; on each attempt the
// ext_proc filter of the backend's cross cluster (upstream.go) translates,
// authorizes and signs the body for that backend alone. The answer names
// its backend (contract.AnsweredByHeader), and the main filter translates
// it from that backend's protocol and meters it (crossAnswered).

// crossHop is one backend of a cross chain as requests to it are made.
type crossHop struct {
	backend       string
	protocol      config.Protocol
	upstreamModel string
	responsesAPI  bool
	queryParams   []string
	// host is the Host every attempt on this backend is sent with: the
	// signed host, a hosted API's server name, else the first endpoint.
	host string
	// headers are the backend's fixed headers (OpenAI-Organization, ...).
	headers [][2]string
	// azureAPIVersion, vertexProject and vertexLocation choose the
	// provider paths as Route's fields do.
	azureAPIVersion, vertexProject, vertexLocation string
	// bedrockInvoke: Claude's InvokeModel API rather than Converse.
	bedrockInvoke bool
}

// crossChain is the failover chain of a route that mixes protocols, in
// the order Envoy tries it.
type crossChain struct {
	hops []crossHop
}

// crossRoute makes route (of model m, with the failover chain chain) a
// cross route: each backend's protocol adds to the translations the
// gateway reads responses for.
func (r *Routes) crossRoute(cfg *config.Config, m *config.Model, route *Route, chain []string, enabled endpointSet) {
	route.NativeResponses = false
	c := &crossChain{}
	for _, name := range chain {
		b := cfg.Backend(name)
		if b == nil {
			continue
		}
		h := crossHop{backend: name, protocol: b.Protocol, upstreamModel: route.UpstreamModel, responsesAPI: b.ResponsesAPI,
			queryParams: b.QueryParams, host: b.UpstreamHost(), headers: b.UpstreamHeaders(), bedrockInvoke: b.AWS.Invoke()}
		if name != route.Backend {
			h.upstreamModel = m.FallbackModel(name, route.UpstreamModel)
		}
		if h.host == "" && len(b.Endpoints) > 0 {
			h.host = b.Endpoints[0].Address
		}
		if b.Azure != nil {
			h.azureAPIVersion = b.Azure.APIVersion
		}
		if b.Vertex != nil {
			h.vertexProject, h.vertexLocation = b.Vertex.Project, b.Vertex.Location
		}
		c.hops = append(c.hops, h)
		r.noteTranslations(h.wire(), enabled)
	}
	route.Cross = c
}

// path is the client's path as the upstream filter gets it: only the
// query parameters some backend of the chain may receive are kept (the
// header reaches every attempt; a query may carry secrets).
func (c *crossChain) path(clientPath string) string {
	var allowed []string
	for i := range c.hops {
		allowed = append(allowed, c.hops[i].queryParams...)
	}
	out, _ := upstreamPath(clientPath, allowed)
	return out
}

// hop returns the chain's hop for backend, or nil.
func (c *crossChain) hop(backend string) *crossHop {
	for i := range c.hops {
		if c.hops[i].backend == backend {
			return &c.hops[i]
		}
	}
	return nil
}

// serves reports whether every backend of the chain serves endpoint a (a
// nil chain: yes), so /v1/models lists only what any attempt can carry.
func (c *crossChain) serves(a *apiEndpoint) bool {
	if c == nil || a.serves == nil {
		return true
	}
	for i := range c.hops {
		h := &c.hops[i]
		if !a.serves(a, &Route{Protocol: h.protocol, VertexProject: h.vertexProject, NativeResponses: h.responsesAPI && h.protocol == config.ProtocolOpenAI}) {
			return false
		}
	}
	return true
}

// native reports whether h serves client API c as is.
func (h *crossHop) native(c translate.Client) bool {
	return translate.Native(c, h.wire()) || c == translate.ClientResponses && h.responsesAPI
}

// translator returns the translator of a request in client API c to h's
// protocol, after it read body, or nil when h serves c as is. A request
// h's protocol cannot carry fails with the refusal the client gets.
func (h *crossHop) translator(c translate.Client, route *Route, body []byte) (translate.Translator, []byte, translate.Request, error) {
	if h.native(c) {
		return nil, body, translate.Request{}, nil
	}
	tr, err := translate.New(c, h.wire(), translate.Options{Model: h.upstreamModel, PublicModel: route.Model, DefaultMaxTokens: route.DefaultMaxTokens, BedrockInvoke: h.bedrockInvoke})
	if err != nil {
		return nil, nil, translate.Request{}, reject(ErrUnsupported, "The model `%s` cannot be used with the %s API.", route.Model, c)
	}
	req, err := tr.Request(body)
	if err != nil {
		var re *translate.RequestError
		if errors.As(err, &re) {
			kind := ErrUnsupported
			if errors.Is(err, translate.ErrStateful) {
				kind = ErrStateful
			}
			return nil, nil, req, reject(kind, "%s", re.Msg)
		}
		return nil, nil, req, err
	}
	return tr, req.Body, req, nil
}

// crossState is a cross request's state in the main filter: one
// translator per backend of the chain that needs one (nil for those that
// serve the client's API as is), each having read the request, so the
// response is translated from whichever backend answers.
type crossState struct {
	chain  *crossChain
	trs    []translate.Translator
	stream bool
	// answered is the backend that answered, once the response headers
	// named it; telemetry and the access log report it.
	answered *crossHop
}

// crossRequest answers the body of a cross request: every backend of the
// chain must carry it (else the client gets the refusal now), the body
// goes on in the client's API with the headers the upstream filter reads,
// and the response plan reads the response headers to learn who answered.
func (p *processor) crossRequest(body, out []byte, route *Route, set []*corev3.HeaderValueOption) *extprocsvcv3.ProcessingResponse {
	c := clientAPI(p.endpoint)
	cs := &crossState{chain: route.Cross, trs: make([]translate.Translator, len(route.Cross.hops)), stream: p.info.Stream}
	for i := range route.Cross.hops {
		tr, _, req, err := route.Cross.hops[i].translator(c, route, out)
		if err != nil {
			return p.fail(err)
		}
		cs.trs[i] = tr
		if tr != nil {
			cs.stream = req.Stream
		}
	}
	p.cross = cs
	p.planResponse()
	set = append(set, header(contract.PathHeader, route.Cross.path(p.path)), header(contract.ModelHeader, route.Model), header("content-length", itoa(len(out))))
	if route.Shaping != nil {
		set = append(set, route.Shaping.headers...)
	}
	common := &extprocsvcv3.CommonResponse{
		ClearRouteCache: true,
		// A translator reads the response: it must not be compressed.
		HeaderMutation: &extprocsvcv3.HeaderMutation{SetHeaders: set, RemoveHeaders: []string{"accept-encoding"}},
	}
	if len(out) != len(body) || (len(out) > 0 && &out[0] != &body[0]) {
		common.BodyMutation = &extprocsvcv3.BodyMutation{Mutation: &extprocsvcv3.BodyMutation_Body{Body: out}}
	}
	return &extprocsvcv3.ProcessingResponse{DynamicMetadata: p.requestMetadata(), Response: &extprocsvcv3.ProcessingResponse_RequestBody{
		RequestBody: &extprocsvcv3.BodyResponse{Response: common},
	}}
}

// crossAnswered takes, at the response headers of a cross request, the
// translator of the backend that answered (answeredBy; empty when no
// backend answered, e.g. Envoy's own 503 after the whole chain failed) and
// completes the plan for it. It returns the header to remove from the
// client's response.
func (p *processor) crossAnswered(answeredBy string) {
	for i := range p.cross.chain.hops {
		h := &p.cross.chain.hops[i]
		if h.backend != answeredBy {
			continue
		}
		p.cross.answered = h
		if p.cross.trs[i] != nil {
			p.tx = &translation{tr: p.cross.trs[i], stream: p.cross.stream, proto: h.protocol}
		}
	}
	p.planTranslation()
}

// crossHeaders removes the backend's name from a cross response and
// reports the backend that answered, and the model it was sent, to the
// access log (the request's metadata named the version's).
func (p *processor) crossHeaders(resp *extprocsvcv3.ProcessingResponse) {
	h := resp.GetResponseHeaders()
	if h.Response == nil {
		h.Response = &extprocsvcv3.CommonResponse{}
	}
	if h.Response.HeaderMutation == nil {
		h.Response.HeaderMutation = &extprocsvcv3.HeaderMutation{}
	}
	h.Response.HeaderMutation.RemoveHeaders = append(h.Response.HeaderMutation.RemoveHeaders, contract.AnsweredByHeader)
	if a := p.cross.answered; a != nil {
		resp.DynamicMetadata = &structpb.Struct{Fields: map[string]*structpb.Value{contract.MetadataNamespace: structpb.NewStructValue(&structpb.Struct{
			Fields: map[string]*structpb.Value{contract.MetaBackend: structpb.NewStringValue(a.backend), contract.MetaUpstreamModel: structpb.NewStringValue(a.upstreamModel)},
		})}}
	}
}

// answeredBy is the backend that answered a cross request, or nil.
func (c *crossState) answeredBy() *crossHop {
	if c == nil {
		return nil
	}
	return c.answered
}

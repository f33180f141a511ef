package extproc

import (
	"fmt"
	"log/slog"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/extproc/translate"
)

// The upstream ext_proc filter of a cross chain (xds/cross.go) runs once
// per attempt of a cross request, after Envoy's load balancer picked the
// endpoint. Its first message carries the endpoint's backend as an
// attribute (contract.UpstreamAttribute); the main filter put the client's
// path, the public model and the version on the request (cross.go). The
// upstream processor makes of the client's body this backend's request:
// translated or with the backend's model name, its path, Host, fixed
// headers, credential and signature. Envoy ignores immediate responses
// from upstream filters, so nothing is refused here: the main filter
// checked that every backend of the chain carries the request.

// isUpstream reports whether a stream's first message comes from the
// upstream filter: only it asks for contract.UpstreamAttribute. For the
// main filter's messages this is a lookup in an empty map.
func isUpstream(req *extprocsvcv3.ProcessingRequest) bool {
	_, ok := req.GetAttributes()[contract.ExtProcFilter].GetFields()[contract.UpstreamAttribute]
	return ok
}

// upstreamProcessor is the state of one attempt's upstream stream.
type upstreamProcessor struct {
	routes  *Routes
	auth    *auth.Authenticator
	log     *slog.Logger
	backend string
	// path, model and version are the main filter's headers.
	path, model, version string
}

// processUpstream answers the upstream filter's stream whose first
// message is first: the request headers, then the buffered body.
func (s *Server) processUpstream(stream extprocsvcv3.ExternalProcessor_ProcessServer, first *extprocsvcv3.ProcessingRequest) error {
	g := s.gen.Load()
	u := &upstreamProcessor{routes: g.routes, auth: g.auth, log: s.log}
	u.backend = first.GetAttributes()[contract.ExtProcFilter].GetFields()[contract.UpstreamAttribute].GetStringValue()
	req := first
	for {
		var resp *extprocsvcv3.ProcessingResponse
		switch r := req.Request.(type) {
		case *extprocsvcv3.ProcessingRequest_RequestHeaders:
			resp = u.onHeaders(r.RequestHeaders)
		case *extprocsvcv3.ProcessingRequest_RequestBody:
			resp = u.onBody(stream, r.RequestBody)
		default: // nothing else is asked for; pass it through
			resp = passThrough(req)
		}
		if err := stream.Send(resp); err != nil {
			return fmt.Errorf("cannot send to envoy: %w", err)
		}
		if _, body := req.Request.(*extprocsvcv3.ProcessingRequest_RequestBody); body {
			return nil
		}
		var err error
		if req, err = stream.Recv(); err != nil {
			_, err = streamEnd(err)
			return err
		}
	}
}

// passThrough answers a message the upstream filter was not asked for.
func passThrough(req *extprocsvcv3.ProcessingRequest) *extprocsvcv3.ProcessingResponse {
	switch req.Request.(type) {
	case *extprocsvcv3.ProcessingRequest_RequestTrailers:
		return &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocsvcv3.TrailersResponse{}}}
	case *extprocsvcv3.ProcessingRequest_ResponseHeaders:
		return &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocsvcv3.HeadersResponse{}}}
	case *extprocsvcv3.ProcessingRequest_ResponseBody:
		return &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocsvcv3.BodyResponse{}}}
	case *extprocsvcv3.ProcessingRequest_ResponseTrailers:
		return &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocsvcv3.TrailersResponse{}}}
	}
	return &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocsvcv3.HeadersResponse{}}}
}

// onHeaders reads the main filter's headers; the request goes on as is
// until its body is read.
func (u *upstreamProcessor) onHeaders(h *extprocsvcv3.HttpHeaders) *extprocsvcv3.ProcessingResponse {
	for _, hv := range h.GetHeaders().GetHeaders() {
		switch hv.GetKey() {
		case contract.PathHeader:
			u.path = headerValue(hv)
		case contract.ModelHeader:
			u.model = headerValue(hv)
		case contract.VersionHeader:
			u.version = headerValue(hv)
		}
	}
	return &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocsvcv3.HeadersResponse{}}}
}

// onBody makes the client's body this attempt's request. A request it
// cannot place (a reload removed the model between the filters) goes on
// unchanged, and the backend answers it.
func (u *upstreamProcessor) onBody(stream extprocsvcv3.ExternalProcessor_ProcessServer, b *extprocsvcv3.HttpBody) *extprocsvcv3.ProcessingResponse {
	pass := &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_RequestBody{RequestBody: &extprocsvcv3.BodyResponse{}}}
	route := u.routes.version(u.model, u.version)
	if route == nil || route.Cross == nil || route.Cross.hop(u.backend) == nil {
		u.log.Error("cross-protocol attempt for an unknown route", "model", u.model, "version", u.version, "backend", u.backend)
		return pass
	}
	hop := route.Cross.hop(u.backend)
	set, body, err := u.request(hop, route, b.GetBody())
	if err != nil {
		u.log.Error("cannot translate a cross-protocol attempt", "model", u.model, "backend", u.backend, "error", err)
		return pass
	}
	if s, ok := u.auth.Signer(hop.backend); ok {
		signed, err := s.Sign(stream.Context(), pathOf(set), body)
		if err != nil {
			// Sent unsigned, the backend refuses it (the client gets the
			// translated 403: the gateway's credentials were refused).
			u.log.Error("cannot sign a cross-protocol attempt", "backend", u.backend, "error", err)
		}
		for _, h := range signed {
			set = append(set, header(h[0], h[1]))
		}
	}
	return &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_RequestBody{RequestBody: &extprocsvcv3.BodyResponse{
		Response: &extprocsvcv3.CommonResponse{
			HeaderMutation: &extprocsvcv3.HeaderMutation{SetHeaders: set},
			BodyMutation:   &extprocsvcv3.BodyMutation{Mutation: &extprocsvcv3.BodyMutation_Body{Body: body}},
		},
	}}}
}

// request returns the headers and body of the attempt on hop: path,
// Host, content-length, fixed headers and credential, the body translated
// or with hop's model name.
func (u *upstreamProcessor) request(hop *crossHop, route *Route, body []byte) ([]*corev3.HeaderValueOption, []byte, error) {
	c := clientAPI(endpointFor(pathOnly(u.path)))
	tr, out, treq, err := hop.translator(c, route, body)
	if err != nil {
		return nil, nil, err
	}
	path := u.path
	at := &Route{UpstreamModel: hop.upstreamModel, AzureAPIVersion: hop.azureAPIVersion}
	switch {
	case tr != nil:
		path = treq.Path
		if hop.azureAPIVersion != "" {
			path = azurePath(path, at)
		}
		if hop.vertexProject != "" {
			path = translate.VertexPath(path, hop.vertexProject, hop.vertexLocation)
		}
	case hop.azureAPIVersion != "":
		path = azurePath(path, at)
	default:
		path, _ = upstreamPath(path, hop.queryParams)
	}
	if tr == nil && hop.upstreamModel != u.model {
		if out, err = rewriteModel(out, hop.upstreamModel); err != nil {
			return nil, nil, err
		}
	}
	set := []*corev3.HeaderValueOption{header(":path", path), header(":authority", hop.host), header("content-length", itoa(len(out)))}
	for _, h := range treq.Headers {
		set = append(set, header(h[0], h[1]))
	}
	for _, h := range hop.headers {
		set = append(set, header(h[0], h[1]))
	}
	if h, ok := u.auth.Upstream(hop.backend); ok {
		set = append(set, header(h.Name, h.Value))
	}
	return set, out, nil
}

// pathOf is the :path set holds.
func pathOf(set []*corev3.HeaderValueOption) string {
	for _, h := range set {
		if h.GetHeader().GetKey() == ":path" {
			return string(h.GetHeader().GetRawValue())
		}
	}
	return ""
}

// version returns the route of model's version, or nil.
func (r *Routes) version(model, version string) *Route {
	if r == nil || r.byModel[model] == nil {
		return nil
	}
	mr := r.byModel[model]
	for i := range mr.versions {
		if mr.versions[i].Version == version {
			return &mr.versions[i]
		}
	}
	return nil
}

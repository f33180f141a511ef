package extproc

import (
	"slices"
	"strconv"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/extproc/ratelimit"
)

// serviceState is a service request's part of the processor: which
// service and operation it is. Zero for model requests.
type serviceState struct {
	entry *serviceEntry
	op    *serviceOp
	// admitted: the headers answer let it through with its metadata, so
	// Envoy's service log counts it even if the body rule refuses it.
	admitted bool
}

// The processing modes of a service request. Its route's ExtProcPerRoute
// (xds/service.go) already sends only the request headers; these
// overrides add what an operation needs.
var (
	// serviceHeldMode: the request holds a concurrency slot. Envoy can
	// only rule out response trailers when the response has ended, so the
	// ext_proc stream stays open (no message flows) until then, and its
	// end releases the slot (finish).
	serviceHeldMode = serviceMode(extprocv3.ProcessingMode_NONE, extprocv3.ProcessingMode_SEND)
	// serviceBodyMode and serviceBodyHeldMode: the operation has a body
	// rule, so the request body is buffered for it.
	serviceBodyMode     = serviceMode(extprocv3.ProcessingMode_BUFFERED, extprocv3.ProcessingMode_SKIP)
	serviceBodyHeldMode = serviceMode(extprocv3.ProcessingMode_BUFFERED, extprocv3.ProcessingMode_SEND)
)

func serviceMode(body extprocv3.ProcessingMode_BodySendMode, trailers extprocv3.ProcessingMode_HeaderSendMode) *extprocv3.ProcessingMode {
	return &extprocv3.ProcessingMode{
		RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
		ResponseHeaderMode:  extprocv3.ProcessingMode_SKIP,
		RequestBodyMode:     body,
		ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
		RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
		ResponseTrailerMode: trailers,
	}
}

// serviceHeaders is what the request headers of a service request carry
// that its policy reads.
type serviceHeaders struct {
	method, path, contentLength, contentType, tenant string
	strip, authz, apiKey                             []string
}

// onServiceRequestHeaders authenticates, classifies, authorizes, scopes and
// limits a request for a service from its headers alone; the route Envoy
// matched by the path prefix takes it to the service, untouched but for the
// credential and tenant headers. The body is read only for an operation
// with a body rule.
func (p *processor) onServiceRequestHeaders(e *serviceEntry, h serviceHeaders) *extprocsvcv3.ProcessingResponse {
	p.svc.entry = e
	// A gRPC service's calls are refused with gRPC statuses.
	p.grpc = isGRPC(h.contentType)
	if p.grpc {
		// pymilvus and others send base64(key) without a scheme.
		h.authz = auth.GRPCAuthorization(h.authz)
	}
	if err := p.authenticate(h.authz, h.apiKey, pathOnly(p.path)); err != nil {
		return p.fail(err)
	}
	if p.limits != nil && p.Tenant == "" {
		if err := p.tenantFrom(h.tenant); err != nil {
			return p.fail(err)
		}
	}
	op, err := e.classify(h.method, e.upstreamPath(pathOnly(p.path)), p.scopeTenant())
	p.svc.op = op
	if op != nil && p.tenant != nil && !p.tenant.AllowsOperation(e.name, op.name) {
		return p.fail(auth.Denied(p.tenant, "operation", e.name+"."+op.name))
	}
	if err != nil {
		return p.fail(err)
	}
	held, err := p.admitService(h.contentLength)
	if err != nil {
		return p.denied(err)
	}
	if held {
		// The stream lasts until the response ends (serviceHeldMode),
		// also past a body answer (done).
		p.plan.read = readGRPCTrailers
	}
	m := p.requestHeaderMutation(h.strip, len(h.authz)+len(h.apiKey) > 0)
	if m == nil {
		m = &extprocsvcv3.HeaderMutation{}
	}
	m.SetHeaders = p.traceHeaders(m.SetHeaders) // the service continues the trace
	if u, ok := p.auth.Upstream(e.backend); ok {
		// Set, never both removed and set: the client's copy was dropped.
		m.RemoveHeaders = slices.DeleteFunc(m.RemoveHeaders, func(k string) bool { return k == u.Name })
		m.SetHeaders = append(m.SetHeaders, header(u.Name, u.Value))
	}
	out := &extprocsvcv3.ProcessingResponse{
		Response: &extprocsvcv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocsvcv3.HeadersResponse{
			Response: &extprocsvcv3.CommonResponse{HeaderMutation: m},
		}},
		DynamicMetadata: p.serviceMetadata(),
	}
	p.svc.admitted = true
	switch {
	case op.body != "" && held:
		out.ModeOverride = serviceBodyHeldMode
	case op.body != "":
		out.ModeOverride = serviceBodyMode
	case held:
		out.ModeOverride = serviceHeldMode
	}
	return out
}

// scopeTenant is the tenant {tenant} stands for: the verified tenant, else
// the limits' tenant; "" on a gateway without tenants, where no scope
// applies.
func (p *processor) scopeTenant() string { return p.Tenant }

// admitService applies the tenant's limits on the service: one request,
// its content-length in bytes, and a concurrency slot held until the
// response ends (held).
func (p *processor) admitService(contentLength string) (held bool, err error) {
	if p.limits == nil {
		return false, nil
	}
	n, _ := strconv.ParseInt(contentLength, 10, 64)
	began := p.now()
	res, hs, err := p.limits.limiter.Admit(p.ctx, ratelimit.Request{Tenant: p.Tenant, Service: p.svc.entry.name, Backend: p.svc.entry.backend, Bytes: n})
	p.admission(began, err)
	p.lim = &limitState{headers: hs}
	if err != nil {
		return false, err
	}
	if !res.HoldsSlots() {
		res.Finish(ratelimit.Usage{})
		return false, nil
	}
	p.lim.res = res
	return true, nil
}

// onServiceRequestBody checks an operation's body rule: a top-level string
// field of the JSON body must match its pattern for the caller's tenant.
// The body passes unchanged.
func (p *processor) onServiceRequestBody(b *extprocsvcv3.HttpBody) *extprocsvcv3.ProcessingResponse {
	op := p.svc.op
	body := b.GetBody()
	if !b.GetEndOfStream() {
		return p.fail(reject(ErrBodyTruncated, "The request body arrived incomplete."))
	}
	if !gjson.ValidBytes(body) {
		return p.fail(reject(ErrBadJSON, "The request body is not valid JSON."))
	}
	v := gjson.GetBytes(body, gjson.Escape(op.body))
	if v.Type != gjson.String {
		return p.fail(reject(ErrOutOfScope, "The operation %s of service %s needs the string field %s in the body.", op.name, p.svc.entry.name, op.body))
	}
	if !op.bodyMatch.Match(v.Str, p.scopeTenant()) {
		return p.fail(reject(ErrOutOfScope, "Tenant %s may not use %s %q on service %s.", p.Tenant, op.body, clip(v.Str, maxEchoedPath), p.svc.entry.name))
	}
	return &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_RequestBody{RequestBody: &extprocsvcv3.BodyResponse{}}}
}

// serviceMetadata is what the access logs learn about a service request:
// tenant, service, operation and the x-ratelimit-* values.
func (p *processor) serviceMetadata() *structpb.Struct {
	m := newMetaFields(4, 6)
	m.str(contract.MetaEndpoint, p.svc.entry.prefix)
	m.str(contract.MetaService, p.svc.entry.name)
	if p.svc.op != nil {
		m.str(contract.MetaOperation, p.svc.op.name)
	}
	if p.Tenant != "" {
		m.str(contract.MetaTenant, p.Tenant)
	}
	p.rateValues(m.str)
	return &structpb.Struct{Fields: map[string]*structpb.Value{
		contract.MetadataNamespace: structpb.NewStructValue(&structpb.Struct{Fields: m.f}),
	}}
}

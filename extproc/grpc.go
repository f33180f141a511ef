package extproc

import (
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/ratelimit"
)

// grpcServicePrefix is the path prefix of the KServe v2 gRPC methods the
// gateway routes.
const grpcServicePrefix = "/inference.GRPCInferenceService/"

// grpcStreamMode is the processing mode for a routed gRPC request: nothing
// more goes to ext_proc, so messages flow without buffering or round trips
// (a bidi stream's body never ends and must not be buffered).
var grpcStreamMode = &extprocv3.ProcessingMode{
	RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
	ResponseHeaderMode:  extprocv3.ProcessingMode_SKIP,
	RequestBodyMode:     extprocv3.ProcessingMode_NONE,
	ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
	RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
	ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
}

// grpcHeldMode is grpcStreamMode for a call that holds a limits slot:
// Envoy also sends the response trailers, the call's end, where the slot
// is released (or the ext_proc stream's end, whichever comes first).
var grpcHeldMode = &extprocv3.ProcessingMode{
	RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
	ResponseHeaderMode:  extprocv3.ProcessingMode_SKIP,
	RequestBodyMode:     extprocv3.ProcessingMode_NONE,
	ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
	RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
	ResponseTrailerMode: extprocv3.ProcessingMode_SEND,
}

// admitGRPC applies the tenant's and backend's limits to a gRPC call: it
// counts as one request, and as one concurrent stream for its whole life.
// Tokens are not estimated (messages are tensors, not text). It plans the
// response phases the call needs: its trailers when it holds a slot.
func (p *processor) admitGRPC(tenantHeader string) error {
	p.plan.read = readGRPC
	if p.limits == nil {
		return nil
	}
	if p.Tenant == "" {
		if err := p.tenantFrom(tenantHeader); err != nil {
			return err
		}
	}
	began := p.now()
	res, h, err := p.limits.limiter.Admit(p.ctx, ratelimit.Request{Tenant: p.Tenant, Model: p.route.Model, Backend: p.route.Backend})
	p.admission(began, err)
	p.lim = &limitState{headers: h}
	if err != nil {
		return err
	}
	if !res.Holds() {
		res.Finish(ratelimit.Usage{})
		return nil
	}
	p.lim.res = res
	p.plan.read, p.plan.settle = readGRPCTrailers, true
	return nil
}

// isGRPC reports whether a request's content-type is gRPC's.
func isGRPC(contentType string) bool {
	return contentType == "application/grpc" || strings.HasPrefix(contentType, "application/grpc+") ||
		strings.HasPrefix(contentType, "application/grpc;")
}

// onGRPCRequestHeaders authenticates, authorizes and routes a gRPC call from
// its headers alone, then switches the request to pass-through. The model
// is fixed for the life of the call by its metadata; the backend reads the
// model_name of each message itself.
func (p *processor) onGRPCRequestHeaders(method, path, model, tenant string, strip, authz, apiKey []string) *extprocsvcv3.ProcessingResponse {
	p.grpc, p.endpoint = true, endpointGRPC
	// The label only ever holds a known method name (metrics).
	name, known := grpcMethodOf(path)
	p.grpcMethod = name
	if err := p.authenticate(authz, apiKey, path); err != nil {
		return p.fail(err)
	}
	if !known || method != http.MethodPost {
		return p.fail(reject(ErrUnknownPath, "The gateway does not serve the gRPC method %s.", clip(path, maxEchoedPath)))
	}
	if model == "" {
		return p.fail(reject(ErrMissingModel, "Set the %s metadata to the model's name.", contract.ModelHeader))
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
	if !route.Protocol.IsGRPC() {
		return p.fail(reject(ErrUnknownModel, "The model `%s` is not served over gRPC.", model))
	}
	if !grpcMethodAllowed(route, name) {
		return p.fail(reject(ErrGRPCMethodDenied, "The gRPC method %s is not enabled for the model `%s` on this gateway.", name, model))
	}
	p.route, p.info.Model = route, model
	if err := p.admitGRPC(tenant); err != nil {
		return p.denied(err)
	}
	// The model header is overwritten with the verified public name: the
	// access log counts messages per model from it.
	strip = slices.DeleteFunc(strip, func(k string) bool { return k == contract.ModelHeader })
	m := p.requestHeaderMutation(strip, len(authz)+len(apiKey) > 0)
	if m == nil {
		m = &extprocsvcv3.HeaderMutation{}
	}
	m.SetHeaders = append(m.SetHeaders, header(contract.BackendHeader, route.Cluster), header(contract.VersionHeader, route.Version),
		header(contract.ModelHeader, route.Model))
	if h, ok := p.auth.Upstream(route.Backend); ok {
		// Set, never both removed and set: the client's copy was dropped above.
		m.RemoveHeaders = slices.DeleteFunc(m.RemoveHeaders, func(k string) bool { return k == h.Name })
		m.SetHeaders = append(m.SetHeaders, header(h.Name, h.Value))
	}
	return &extprocsvcv3.ProcessingResponse{
		Response: &extprocsvcv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocsvcv3.HeadersResponse{
			Response: &extprocsvcv3.CommonResponse{HeaderMutation: m, ClearRouteCache: true},
		}},
		ModeOverride:    p.plan.mode(atRequestHeaders),
		DynamicMetadata: p.requestMetadata(),
	}
}

// grpcFail ends a gRPC call with a trailers-only response (HTTP 200,
// grpc-status and grpc-message) rendered from err's refusal row r, logged
// once.
func (p *processor) grpcFail(err error, r refusal) *extprocsvcv3.ProcessingResponse {
	code, msg := r.grpc, publicMessage(err)
	p.grpcCode = code
	p.log.Info("request rejected", "request_id", p.requestID, "path", clip(pathOnly(p.path), maxEchoedPath), "grpc_status", code.String(), "tenant", p.Tenant, "reason", err.Error())
	set := []*corev3.HeaderValueOption{
		header("content-type", "application/grpc"),
		header("grpc-status", itoa(int(code))),
		header("grpc-message", encodeGRPCMessage(msg)),
	}
	if de, ok := r.retryAfterOf(err); ok && de.RetryAfter > 0 {
		if details, ok := retryDetails(code, msg, de.RetryAfter); ok {
			set = append(set, header("grpc-status-details-bin", details))
		}
	}
	p.status, p.answered = r.status, true
	return &extprocsvcv3.ProcessingResponse{DynamicMetadata: p.answerMetadata(), Response: &extprocsvcv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocsvcv3.ImmediateResponse{
			Status:     &typev3.HttpStatus{Code: typev3.StatusCode_OK},
			Headers:    &extprocsvcv3.HeaderMutation{SetHeaders: set},
			GrpcStatus: &extprocsvcv3.GrpcStatus{Status: uint32(code)},
			Details:    "streamgate_rejected",
		},
	}}
}

// retryDetails encodes a google.rpc.Status with RetryInfo for the
// grpc-status-details-bin trailer.
func retryDetails(code codes.Code, msg string, after time.Duration) (string, bool) {
	ri, err := anypb.New(&errdetails.RetryInfo{RetryDelay: durationpb.New(after)})
	if err != nil {
		return "", false
	}
	b, err := proto.Marshal(&spb.Status{Code: int32(code), Message: msg, Details: []*anypb.Any{ri}})
	if err != nil {
		return "", false
	}
	return base64.RawStdEncoding.EncodeToString(b), true
}

// encodeGRPCMessage percent-encodes a grpc-message value as the gRPC HTTP/2
// protocol requires: bytes outside printable ASCII, and '%', become %XX.
func encodeGRPCMessage(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c <= 0x7e && c != '%' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

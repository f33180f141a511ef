package extproc

import (
	"context"
	"errors"
	"google.golang.org/protobuf/types/known/structpb"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"

	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/extproc/ratelimit"
)

// Header names Streamgate reads or writes.
const ()

// endpoint is a client-facing API path Streamgate serves.
type endpoint int

const (
	endpointNone endpoint = iota
	endpointChat
	endpointCompletions
	endpointEmbeddings
	endpointModels
	endpointMessages
	endpointGRPC           // a KServe v2 gRPC call (grpc.go)
	endpointResponses      // the OpenAI Responses API (translate.ClientResponses)
	endpointRealtime       // a Realtime WebSocket session (realtime.go)
	endpointRerank         // the Cohere/Jina rerank API (rerank.go)
	endpointTranscriptions // speech to text, a multipart upload (audio.go)
	endpointTranslations   // speech to English text, a multipart upload (audio.go)
	endpointSpeech         // text to speech, streamed audio back (audio.go)
	// The OpenAI Images API (images.go); edits are a multipart upload.
	endpointImageGenerations
	endpointImageEdits
)

// processor is the state of one request's ext_proc stream. It is used by
// one goroutine at a time: the stream's, then, once handed over to Envoy's
// usage report (report.go), the access log stream's that delivers the
// report or the timer's that settles it when none comes. Defaults pass
// everything through.
type processor struct {
	routes *Routes
	// maxBody caps this request's body: gateway.max_request_body_bytes,
	// or maxUpload (gateway.max_upload_bytes) on contract.UploadPaths.
	maxBody   int64
	maxUpload int64
	log       *slog.Logger
	metrics   *Metrics
	// ctx ends when the ext_proc stream does (client gone, Envoy reset).
	ctx context.Context
	// limits is nil when no limits are configured.
	limits *Limits
	// peer is the verified client certificate's identity, zero without one.
	peer auth.Peer

	lim *limitState
	// hold is the tenant's concurrency slot taken at the request headers
	// (hold.go) until admission takes it over; nil otherwise.
	hold *ratelimit.Hold
	// plan is what the response needs (plan.go); meter is its one usage
	// meter, read by limits and telemetry (response.go).
	plan  responsePlan
	meter meter
	// reports takes requests whose usage Envoy reads (report.go);
	// envoyReads says whether the config installs Envoy's reading;
	// reportKey is set once this request is to be handed over (plan.report).
	reports    *reports
	envoyReads bool
	reportKey  string

	requestID string
	path      string
	pin       string // client's x-streamgate-model-version, read before it is stripped
	endpoint  endpoint
	info      requestInfo
	img       imageRequest // an Images API request's size and quality (images.go)
	// up is an upload's state (audio.go), nil on JSON endpoints: a
	// pointer, so JSON requests carry one word for it.
	up    *upload
	route *Route
	// status is the response's HTTP status: Streamgate's own answer
	// (answered is then set) or the backend's; 0 while unknown.
	status   int
	answered bool
	tx       *translation // set when the backend speaks another API
	// cross is set for a request whose failover chain mixes protocols
	// (cross.go); tx then comes at the response headers.
	cross *crossState

	// gRPC calls (grpc.go): routed from metadata, answered with gRPC status.
	grpc       bool
	grpcMethod string
	grpcCode   codes.Code

	// auth verifies credentials; nil or not Required means an open gateway.
	auth *auth.Authenticator
	// Tenant is who the request is accounted to: the verified tenant when
	// auth is on, else the limits tenant header's value (or its default);
	// empty when refused before either. Limits and metrics key on it.
	Tenant string
	tenant *auth.Tenant
	// apiKey is the name of the API key the request presented ("" for
	// none, a JWT or an unnamed key): per-key budgets count by it.
	apiKey string

	// obs is what telemetry measures (telemetry.go).
	obs obsState
	// pick is the endpoint picked for a backend with picking (picking.go).
	pick pickState
	// svc is set for a request to a service (service_request.go).
	svc serviceState
}

func newProcessor(routes *Routes, maxBody int64, log *slog.Logger, m *Metrics) *processor {
	return &processor{routes: routes, maxBody: maxBody, log: log, metrics: m, ctx: context.Background()}
}

// handle answers one message from Envoy: one method per ext_proc phase.
// The request phases decide the response plan (plan.go), the response
// phases run it (response.go); a request whose plan reads nothing of the
// response ends its ext_proc stream with the body answer (done).
func (p *processor) handle(req *extprocsvcv3.ProcessingRequest) *extprocsvcv3.ProcessingResponse {
	switch r := req.Request.(type) {
	case *extprocsvcv3.ProcessingRequest_RequestHeaders:
		p.peer = peerOf(req)
		return p.onRequestHeaders(r.RequestHeaders)
	case *extprocsvcv3.ProcessingRequest_RequestBody:
		return p.onRequestBody(r.RequestBody)
	case *extprocsvcv3.ProcessingRequest_RequestTrailers:
		return &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocsvcv3.TrailersResponse{}}}
	case *extprocsvcv3.ProcessingRequest_ResponseHeaders:
		return p.onResponseHeaders(r.ResponseHeaders)
	case *extprocsvcv3.ProcessingRequest_ResponseBody:
		return p.onResponseBody(req)
	case *extprocsvcv3.ProcessingRequest_ResponseTrailers:
		return p.onResponseTrailers()
	default:
		return p.fail(errors.New("unexpected ext_proc message"))
	}
}

// onRequestHeaders reads the request headers, authenticates, and answers
// or sends the request on to its body phase. It is longer than the house
// limit for a reason: the header loop stays inline because moving it into
// a function moves the header slices (strip, authz, apiKey) to the heap,
// one allocation more per request (BenchmarkPolicyRequest 40 -> 41).
func (p *processor) onRequestHeaders(h *extprocsvcv3.HttpHeaders) *extprocsvcv3.ProcessingResponse {
	var method, contentLength, tenant, contentType, model string
	var strip, authz, apiKey []string
	var up upgradeRequest
	for _, hv := range h.GetHeaders().GetHeaders() {
		switch k := hv.GetKey(); {
		case k == ":method":
			method = headerValue(hv)
		case k == ":path":
			p.path = headerValue(hv)
		case k == "content-length":
			contentLength = headerValue(hv)
		case k == "content-type":
			contentType = headerValue(hv)
		case k == contract.ModelHeader:
			model = headerValue(hv)
			strip = append(strip, k)
		case k == contract.RequestIDHeader:
			p.requestID = headerValue(hv)
		case k == contract.VersionHeader:
			p.pin = headerValue(hv)
			strip = append(strip, k)
		case k == contract.PriorityHeader:
			p.pick.header = headerValue(hv)
			strip = append(strip, k)
		case k == auth.HeaderAuthorization:
			authz = append(authz, headerValue(hv))
		case k == auth.HeaderAPIKey:
			apiKey = append(apiKey, headerValue(hv))
		case k == headerUpgrade:
			up.upgrade = headerValue(hv)
		case k == headerWSProtocol:
			up.protocols = append(up.protocols, headerValue(hv))
		case p.limits != nil && k == p.limits.cfg.TenantHeader:
			tenant = headerValue(hv)
			if p.auth != nil { // unverified: the verified tenant goes upstream instead
				strip = append(strip, k)
			}
		case strings.HasPrefix(k, contract.HeaderPrefix):
			strip = append(strip, k)
		}
	}
	path, _, _ := strings.Cut(p.path, "?")
	if e := p.routes.service(path); e != nil {
		p.obsRequestHeaders(h)
		// Copies: passing the slices on would move them to the heap for
		// every request (escape analysis does not follow the branch).
		return p.onServiceRequestHeaders(e, serviceHeaders{method, path, contentLength, contentType, tenant, slices.Clone(strip), slices.Clone(authz), slices.Clone(apiKey)})
	}
	if isGRPC(contentType) {
		return p.onGRPCRequestHeaders(method, path, model, tenant, strip, authz, apiKey)
	}
	if path == realtimePath || up.websocket() {
		return p.onRealtimeRequestHeaders(h, method, path, up, tenant, strip, authz, apiKey)
	}
	p.endpoint = endpointFor(path)
	if contract.IsUploadPath(path) {
		p.up, p.maxBody = &upload{contentType: contentType}, max(p.maxUpload, p.maxBody)
	}
	if err := p.authenticate(authz, apiKey, path); err != nil {
		return p.fail(err)
	}
	if err := p.readPriority(); err != nil {
		return p.fail(err)
	}
	switch {
	case p.endpoint == endpointNone:
		return p.fail(reject(ErrUnknownPath, "Invalid URL (%s %s)", method, path))
	case p.endpoint == endpointModels:
		if method != http.MethodGet {
			return p.fail(reject(ErrMethod, "Use GET for %s.", path))
		}
		return p.immediate(http.StatusOK, p.modelList(), "streamgate_models")
	case method != http.MethodPost:
		return p.fail(reject(ErrMethod, "Use POST for %s.", path))
	case h.GetEndOfStream():
		return p.fail(p.noBody())
	}
	if err := p.checkUploadType(); err != nil {
		return p.fail(err)
	}
	if n, err := strconv.ParseInt(contentLength, 10, 64); err == nil && n > p.maxBody {
		return p.fail(reject(ErrBodyTooLarge, "Request body is larger than the gateway limit of %d bytes.", p.maxBody))
	}
	resp := &extprocsvcv3.HeadersResponse{}
	if m := p.requestHeaderMutation(strip, len(authz)+len(apiKey) > 0); m != nil {
		resp.Response = &extprocsvcv3.CommonResponse{HeaderMutation: m}
	}
	out := &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_RequestHeaders{RequestHeaders: resp}}
	if p.limits != nil {
		// With auth on, the verified tenant is the one limited; the
		// tenant header names it only on an open gateway.
		if p.Tenant == "" {
			if err := p.tenantFrom(tenant); err != nil {
				return p.fail(err)
			}
		}
		if refused := p.holdTenant(); refused != nil {
			return refused
		}
	}
	p.planRequestHeaders()
	p.obsRequestHeaders(h)
	out.ModeOverride = p.plan.mode(atRequestHeaders)
	return out
}

// done reports whether the exchange is over after resp: the request was
// refused, or its body answered and the plan reads nothing more here
// (endsAtRequestBody) and it holds no pick. The server then ends the ext_proc stream at once,
// so a pass-through stream holds no goroutine or gRPC stream while tokens
// flow.
func (p *processor) done(resp *extprocsvcv3.ProcessingResponse) bool {
	switch resp.GetResponse().(type) {
	case *extprocsvcv3.ProcessingResponse_ImmediateResponse:
		return true
	case *extprocsvcv3.ProcessingResponse_RequestBody:
		// A picked request keeps its stream until Envoy closes it at the
		// response's end, so the endpoint counts it in flight until then;
		// that costs no message, only the parked stream.
		return p.plan.endsAtRequestBody() && len(p.pick.res.Endpoints) == 0
	}
	return false
}

func (p *processor) onRequestBody(b *extprocsvcv3.HttpBody) *extprocsvcv3.ProcessingResponse {
	if p.svc.entry != nil {
		return p.onServiceRequestBody(b)
	}
	p.pick.bodyAt = p.now()
	body := b.GetBody()
	out, err := p.readRequestBody(body, b.GetEndOfStream())
	if err != nil {
		return p.fail(err)
	}
	route, err := p.pickRoute()
	if err != nil {
		return p.fail(err)
	}
	if p.up == nil { // shaping edits JSON bodies
		if out, err = route.Shaping.apply(route.Model, out); err != nil {
			return p.fail(err)
		}
	}
	if refused := p.admit(out); refused != nil {
		return refused
	}
	if refused := p.pickEndpoint(body); refused != nil {
		return refused
	}
	out, added := p.askUsage(out)
	set := []*corev3.HeaderValueOption{header(contract.BackendHeader, route.Cluster), header(contract.VersionHeader, route.Version)}
	set = p.traceHeaders(set)
	if route.FirstByteTimeout != "" && p.info.Stream {
		set = append(set, header(contract.PerTryTimeoutHeader, route.FirstByteTimeout))
	}
	if route.Cross != nil {
		return p.crossRequest(body, out, route, set)
	}
	if !p.native(route) {
		return p.translateRequest(out, route, set)
	}
	return p.nativeRequest(body, out, added, route, set)
}

// readRequestBody checks and reads the buffered request body (size, whole,
// the endpoint's fields), authorizes its model and version pin, and applies
// the tenant's token cap; it returns the body to send on.
func (p *processor) readRequestBody(body []byte, whole bool) ([]byte, error) {
	if int64(len(body)) > p.maxBody {
		return nil, reject(ErrBodyTooLarge, "Request body is larger than the gateway limit of %d bytes.", p.maxBody)
	}
	if !whole {
		return nil, reject(ErrBodyTruncated, "The request body arrived incomplete.")
	}
	info, err := p.parseBody(body)
	if err != nil {
		return nil, err
	}
	if p.endpoint == endpointEmbeddings {
		if _, err := checkEmbeddingsInput(promptOf(body, p.endpoint, &info)); err != nil {
			return nil, err
		}
	}
	p.info = info
	if isImages(p.endpoint) {
		if p.img, err = p.readImageRequest(body); err != nil {
			return nil, err
		}
	}
	if err := p.authorizeModel(info.Model); err != nil {
		return nil, err
	}
	if err := p.authorizePin(); err != nil {
		return nil, err
	}
	return p.applyTokenCap(body)
}

// pickRoute chooses the request's model version and backend and checks
// that the model serves the endpoint over HTTP.
func (p *processor) pickRoute() (*Route, error) {
	route, err := p.routes.Pick(p.info.Model, p.pin, nil)
	if err != nil {
		return nil, err
	}
	if route.Protocol.IsGRPC() {
		return nil, reject(ErrUnknownModel, "The model `%s` is served over gRPC only.", p.info.Model)
	}
	if err := p.checkEndpoint(route); err != nil {
		return nil, err
	}
	p.route = route
	return route, nil
}

// nativeRequest answers the body of a request its backend serves as is:
// the path (Azure's deployment path, allowed query parameters), the body
// with the upstream model name when it changed, the upstream credential or
// signature and the shaping headers.
func (p *processor) nativeRequest(body, out []byte, added bool, route *Route, set []*corev3.HeaderValueOption) *extprocsvcv3.ProcessingResponse {
	path := p.path
	if route.AzureAPIVersion != "" {
		path = azurePath(p.path, route)
		set = append(set, header(":path", path))
	} else {
		set = p.queryPath(set, route.QueryParams)
	}
	common := &extprocsvcv3.CommonResponse{ClearRouteCache: true}
	// The token cap and admission return the body itself when unchanged.
	changed := added || len(out) != len(body) || (len(out) > 0 && &out[0] != &body[0])
	if route.UpstreamModel != p.info.Model {
		// Unchanged so far, the body is the one parseRequest read: the
		// model lies where it found it; else it is searched for.
		at := p.info.model
		if changed {
			at = span{}
		}
		var err error
		if out, err = p.rewriteModel(out, at, route.UpstreamModel); err != nil {
			return p.fail(err)
		}
		changed = true
	}
	if changed {
		common.BodyMutation = &extprocsvcv3.BodyMutation{Mutation: &extprocsvcv3.BodyMutation_Body{Body: out}}
		set = append(set, header("content-length", itoa(len(out))))
	}
	if h, ok := p.auth.Upstream(route.Backend); ok {
		set = append(set, header(h.Name, h.Value))
	}
	set, refused := p.signUpstream(set, route, path, out)
	if refused != nil {
		return refused
	}
	if route.Shaping != nil {
		set = append(set, route.Shaping.headers...)
	}
	common.HeaderMutation = &extprocsvcv3.HeaderMutation{SetHeaders: set}
	p.planResponse()
	return &extprocsvcv3.ProcessingResponse{
		Response:        &extprocsvcv3.ProcessingResponse_RequestBody{RequestBody: &extprocsvcv3.BodyResponse{Response: common}},
		DynamicMetadata: p.requestMetadata(),
	}
}

// fail ends the request with err rendered from its refusal row (refusal.go):
// an Anthropic JSON error on /v1/messages, an OpenAI one elsewhere, a gRPC
// status for gRPC calls; logged once.
func (p *processor) fail(err error) *extprocsvcv3.ProcessingResponse {
	r := refusalOf(err)
	if p.grpc {
		return p.grpcFail(err, r)
	}
	msg := publicMessage(err)
	body := r.openAIBody(msg)
	if p.endpoint == endpointMessages {
		body = r.anthropicBody(msg)
	}
	p.log.Info("request rejected", "request_id", p.requestID, "path", pathOnly(p.path), "status", r.status, "tenant", p.Tenant, "reason", err.Error())
	var extra []*corev3.HeaderValueOption
	if r.status == http.StatusUnauthorized {
		extra = append(extra, header("www-authenticate", wwwAuthenticate))
	}
	if de, ok := r.retryAfterOf(err); ok {
		extra = append(append(extra, p.rateHeaders()...), header("retry-after", strconv.FormatInt(de.RetryAfterSeconds(), 10)))
		if h := shouldRetry(err, de); h != nil {
			extra = append(extra, h)
		}
	}
	// The error class reaches the access log as the response code
	// details; the tenant, endpoint and model known so far in the metadata
	// immediate sends with it.
	p.obs.errorType = r.code
	return p.immediate(r.status, body, "streamgate_"+r.code, extra...)
}

// answerMetadata is what the access log learns about a request Streamgate
// answers itself: a model request's endpoint and model, with the tenant,
// as far as known. A service request refused before its headers answer
// sends none: its metadata would put it in Envoy's service log, and
// observeServiceRefusal counts it already.
func (p *processor) answerMetadata() *structpb.Struct {
	if p.svc.entry != nil && !p.svc.admitted {
		return nil
	}
	if p.svc.entry != nil {
		return p.serviceMetadata()
	}
	return p.requestMetadata()
}

// immediate answers the request itself. Envoy applies the dynamic metadata
// sent with it (1.40), so the access log line carries the tenant, endpoint
// and model known by then.
func (p *processor) immediate(status int, body []byte, details string, extra ...*corev3.HeaderValueOption) *extprocsvcv3.ProcessingResponse {
	p.status, p.answered = status, true
	return &extprocsvcv3.ProcessingResponse{DynamicMetadata: p.answerMetadata(), Response: &extprocsvcv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocsvcv3.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(status)},
			Headers: &extprocsvcv3.HeaderMutation{SetHeaders: append([]*corev3.HeaderValueOption{header("content-type", "application/json")}, extra...)},
			Body:    body,
			Details: details,
		},
	}}
}

// finish runs once when the ext_proc stream ends, whatever ended it.
func (p *processor) finish() {
	p.hold.Release()
	p.releaseLimits()
	p.pickDone()
	p.observe()
	p.observeServiceRefusal()
	p.metrics.observeGRPC(p)
}

func header(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: k, RawValue: []byte(v)},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// headerValue reads a header Envoy sent, in either value field.
func headerValue(h *corev3.HeaderValue) string {
	if len(h.GetRawValue()) > 0 {
		return string(h.GetRawValue())
	}
	return h.GetValue()
}

// pathOnly drops the query string, which may carry secrets, before logging.
func pathOnly(p string) string {
	path, _, _ := strings.Cut(p, "?")
	return path
}

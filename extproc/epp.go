package extproc

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/picking"
	"github.com/streamgate/streamgate/extproc/ratelimit"
)

// Refusals of the endpoint picker (EPP). Each has a row in the refusal table.
var (
	// ErrNoEndpoint: no ready endpoint may serve the request (HTTP 503),
	// including an empty or foreign subset hint.
	ErrNoEndpoint = errors.New("no eligible endpoint")
	// ErrSaturated: every eligible endpoint is past its saturation
	// thresholds and the request is shed (HTTP 429 with Retry-After).
	ErrSaturated = errors.New("every endpoint is saturated")
)

// eppRetryAfter is the Retry-After of a request shed under saturation: about
// the time a model server needs to move its queue.
const eppRetryAfter = time.Second

// EPP serves the Gateway API Inference Extension's endpoint-picker protocol
// (v1.0.0) for one backend with picking: Envoy's ext_proc filter in front of
// an InferencePool asks it, per request, which model server to use. It
// reads the request headers and body (model and prompt, for affinity; the
// body BUFFERED or FULL_DUPLEX_STREAMED, see eppStream), and the optional
// subset hint in the filter metadata
// envoy.lb.subset_hint; it answers with the picked endpoint and its
// fallbacks, "IP:port,IP:port,...", both as the request header
// x-gateway-destination-endpoint and as the dynamic metadata
// envoy.lb/x-gateway-destination-endpoint, which Envoy's override-host load
// balancing policy reads. It reads the endpoint that served from
// envoy.lb/x-gateway-destination-endpoint-served on the response headers.
// 503 when no endpoint is eligible, 429 when all are saturated.
//
// It is separate from Server: it authenticates, limits and rewrites
// nothing. Safe for concurrent use by every Envoy stream.
type EPP struct {
	extprocsvcv3.UnimplementedExternalProcessorServer

	pool    *picking.Pool
	backend string
	maxBody int64
	log     *slog.Logger
	metrics *EPPMetrics
	// index maps the current Backend's canonical addresses to its
	// endpoints, rebuilt when a reload replaces the Backend.
	index atomic.Pointer[eppIndex]
	// now is the clock of picks; time.Now outside tests.
	now func() time.Time
	// active counts open ext_proc streams (Active).
	active atomic.Int64
	// pick is (*picking.Backend).Pick outside tests.
	pick func(*picking.Backend, picking.Request, time.Time) picking.Result
}

var _ extprocsvcv3.ExternalProcessorServer = (*EPP)(nil)

// NewEPP returns an EPP picking among backend's endpoints in pool, for
// request bodies up to maxBody bytes (the gRPC message limit). metrics may
// be nil.
func NewEPP(pool *picking.Pool, backend string, maxBody int64, log *slog.Logger, metrics *EPPMetrics) *EPP {
	return &EPP{pool: pool, backend: backend, maxBody: maxBody, log: log, metrics: metrics, now: time.Now, pick: (*picking.Backend).Pick}
}

// eppIndex is one Backend's endpoints by canonical address (netip form), for
// the subset hint and the served-endpoint report.
type eppIndex struct {
	b      *picking.Backend
	byAddr map[string]*picking.Endpoint
}

// current returns the backend's Backend and its index; nil when the pool
// does not pick for it (never after the startup checks of `streamgate epp`).
func (e *EPP) current() *eppIndex {
	b := e.pool.Backend(e.backend)
	if b == nil {
		return nil
	}
	if ix := e.index.Load(); ix != nil && ix.b == b {
		return ix
	}
	ix := &eppIndex{b: b, byAddr: make(map[string]*picking.Endpoint, len(b.Endpoints()))}
	for _, ep := range b.Endpoints() {
		ix.byAddr[canonicalAddr(ep.Addr)] = ep
	}
	e.index.Store(ix)
	return ix
}

// Active is the number of open ext_proc streams: requests picked (or being
// picked) whose response has not ended. Safe for concurrent use.
func (e *EPP) Active() int64 { return e.active.Load() }

// Serve answers ext_proc and gRPC health on lis until ctx is done, then
// lets open streams finish for up to drainTimeout.
func (e *EPP) Serve(ctx context.Context, lis net.Listener) error {
	gs := grpc.NewServer(GRPCOptions(e.maxBody)...)
	extprocsvcv3.RegisterExternalProcessorServer(gs, e)
	return serveWithHealth(ctx, gs, lis)
}

// pick chooses the endpoints for r. It returns what tells Envoy the pick
// (the header mutation and the envoy.lb dynamic metadata, the same list in
// both), or the refusal to send instead.
func (s *eppStream) pick(r picking.Request) (*extprocsvcv3.CommonResponse, *structpb.Struct, *extprocsvcv3.ProcessingResponse) {
	e := s.epp
	ix := e.current()
	if ix == nil {
		return nil, nil, s.fail(reject(ErrNoEndpoint, "No model server is ready to serve the request; retry later."))
	}
	b := ix.b
	if s.subset != nil {
		eligible := ix.subset(s.subset)
		if len(eligible) == 0 {
			return nil, nil, s.fail(reject(ErrNoEndpoint, "No model server the gateway allows is ready to serve the request; retry later."))
		}
		if len(eligible) < len(b.Endpoints()) {
			b = picking.NewBackend(b.Name(), *b.Config(), eligible)
		}
	}
	res := e.pick(b, r, e.now())
	if len(res.Endpoints) == 0 {
		res.Done()
		return nil, nil, s.fail(reject(ErrNoEndpoint, "No model server is ready to serve the request; retry later."))
	}
	if res.Saturated {
		res.Done()
		return nil, nil, s.fail(&clientError{kind: &ratelimit.DeniedError{Kind: ErrSaturated, RetryAfter: eppRetryAfter}, msg: "Every model server is at capacity; retry later."})
	}
	s.res, s.picked = res, true
	e.metrics.picked(e.backend, res.Endpoints[0], res.Reason)
	dest := strings.Join(res.Endpoints, ",")
	common := &extprocsvcv3.CommonResponse{HeaderMutation: &extprocsvcv3.HeaderMutation{
		SetHeaders: []*corev3.HeaderValueOption{header(contract.DestinationEndpointKey, dest)},
	}}
	md := &structpb.Struct{Fields: map[string]*structpb.Value{
		contract.LBNamespace: structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			contract.DestinationEndpointKey: structpb.NewStringValue(dest),
		}}),
	}}
	return common, md, nil
}

// onServed reads the endpoint Envoy reports as having served the request.
// When it is not the picked one (a fallback after a failed attempt), the
// request's in-flight count moves there; anything else the pick recorded on
// the first endpoint (prefix-index entries) stays there, as the picking API
// cannot move it.
func (s *eppStream) onServed(md *corev3.Metadata) {
	v := md.GetFilterMetadata()[contract.LBNamespace].GetFields()[contract.DestinationServedKey]
	if v == nil || !s.picked {
		return
	}
	served := v.GetStringValue()
	e := s.epp
	picked := s.res.Endpoints[0]
	fallback := served != picked && canonicalAddr(served) != canonicalAddr(picked)
	label := served
	var ep *picking.Endpoint
	if ix := e.current(); ix != nil {
		ep = ix.lookup(served)
	}
	if ep == nil {
		label = "other" // not one of the backend's endpoints: bounded labels
	}
	e.metrics.served(e.backend, label, fallback)
	if !fallback {
		return
	}
	e.log.Info("request served by a fallback endpoint", "request_id", s.requestID, "backend", e.backend, "picked", picked, "served", served)
	if ep != nil && s.served == nil {
		s.res.Done()
		ep.Start()
		s.served = ep
	}
}

// finish ends the request's count on its endpoint; runs once per stream.
func (s *eppStream) finish() {
	s.res.Done()
	if s.served != nil {
		s.served.Done()
		s.served = nil
	}
}

// fail answers the request with err's refusal (an OpenAI JSON error, with
// Retry-After when the row says so), logged once.
func (s *eppStream) fail(err error) *extprocsvcv3.ProcessingResponse {
	r := refusalOf(err)
	s.epp.log.Info("request refused by the endpoint picker", "request_id", s.requestID, "backend", s.epp.backend, "status", r.status, "reason", err.Error())
	s.epp.metrics.refused(s.epp.backend, r.code)
	extra := []*corev3.HeaderValueOption{header("content-type", "application/json")}
	if de, ok := r.retryAfterOf(err); ok {
		extra = append(extra, header("retry-after", strconv.FormatInt(de.RetryAfterSeconds(), 10)))
	}
	return &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocsvcv3.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(r.status)},
			Headers: &extprocsvcv3.HeaderMutation{SetHeaders: extra},
			Body:    r.openAIBody(publicMessage(err)),
			Details: "streamgate_epp_" + r.code,
		},
	}}
}

// noteSubset keeps the subset hint of the first message that carries one.
func (s *eppStream) noteSubset(md *corev3.Metadata) {
	if s.subset != nil || md == nil {
		return
	}
	if v := md.GetFilterMetadata()[contract.SubsetNamespace].GetFields()[contract.SubsetKey]; v != nil {
		s.subset = v
	}
}

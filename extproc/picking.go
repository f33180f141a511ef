package extproc

import (
	"strings"
	"time"

	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/picking"
)

// pickState is one request's endpoint pick, for a backend with picking
// (docs/picking.md). The pool is the server's; res is ended by finish.
type pickState struct {
	pool *picking.Pool
	res  picking.Result
	// policy is the generation's saturation-wait policy (priority.go).
	policy pickPolicy
	// header is the client's x-streamgate-priority, read before it is
	// stripped; prio is the request's priority (readPriority).
	header string
	prio   picking.Priority
	// bodyAt is when the request body's message arrived: a wait for room
	// must end within the message budget counted from it.
	bodyAt time.Time
}

// SetPicking makes the server pick endpoints from pool for backends with
// picking; nil (the default) leaves every backend to Envoy's LEAST_REQUEST.
// Call it before Serve; the caller keeps pool updated and closes it.
func (s *Server) SetPicking(pool *picking.Pool) { s.picks = pool }

// pickEndpoint picks the endpoint of the request's backend from the
// request body, when that backend picks. requestMetadata then tells Envoy
// the pick; finish ends it. A request routed to a failover chain is not
// picked for: Envoy's aggregate cluster does not pass the request's
// dynamic metadata to its clusters' load balancers (Envoy 1.40, e2e
// TestFailoverChainWithPickingBackend), so the pick would be ignored and
// its in-flight count wrong; LEAST_REQUEST balances the chain's backends.
// When the pick finds the backend saturated, or other requests wait for
// it, the request waits for room (waitForRoom) and picks again, or is
// refused: the returned refusal, nil otherwise.
// Called once the request is routed and admitted, with the body
// parseRequest read; cost: the pick (parseRequest found the prompt) and,
// without saturation, one atomic load.
func (p *processor) pickEndpoint(body []byte) *extprocsvcv3.ProcessingResponse {
	if p.pick.pool == nil || p.route == nil || p.route.Cluster != p.route.Backend {
		return nil
	}
	b := p.pick.pool.Backend(p.route.Backend)
	if b == nil {
		return nil
	}
	req := picking.Request{Prompt: promptOf(body, p.endpoint, &p.info), LoRA: p.route.UpstreamModel}
	p.pick.res.Done() // a request picks once; never leak an earlier count
	p.pick.res = b.Pick(req, p.now())
	if p.pick.res.Saturated || b.Queued() {
		p.pick.res.Done() // not sent while it waits: not in flight anywhere
		p.pick.res = picking.Result{}
		if refused := p.waitForRoom(b); refused != nil {
			return refused
		}
		p.pick.res = b.Pick(req, p.now())
	}
	p.pick.pool.Observe(p.route.Backend, &p.pick.res)
	return nil
}

// pickDone ends the request's pick; finish calls it once the stream ends.
func (p *processor) pickDone() { p.pick.res.Done() }

// pickMetadata adds the pick to the body answer's metadata: the endpoint
// list under contract.LBNamespace for Envoy, the first endpoint and the
// reason under f (contract.MetadataNamespace) for the access log. Nothing
// when the request was not picked for.
func (p *processor) pickMetadata(md *structpb.Struct, f map[string]*structpb.Value) {
	eps := p.pick.res.Endpoints
	if len(eps) == 0 {
		return
	}
	f[contract.MetaPickedEndpoint] = structpb.NewStringValue(eps[0])
	f[contract.MetaPickReason] = structpb.NewStringValue(p.pick.res.Reason)
	md.Fields[contract.LBNamespace] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
		contract.DestinationEndpointKey: structpb.NewStringValue(strings.Join(eps, ",")),
	}})
}

// span is where a field's raw JSON value lies in the request body.
type span struct{ at, n int }

// keepPrompts records where the prompt fields the scan found lie in a body
// of size bytes: parseRequest's one pass over the top-level keys already
// knows, so picking never scans the body again.
func (info *requestInfo) keepPrompts(typed *[numKeptFields]gjson.Result, size int) {
	for i := range info.prompts {
		v := typed[numTypedFields+i]
		if v.Index > 0 && len(v.Raw) > 0 && v.Index+len(v.Raw) <= size {
			info.prompts[i] = span{v.Index, len(v.Raw)}
		}
	}
}

// promptOf returns the raw JSON of the part of a request body the model
// server's prefix cache keys on: `prompt` for completions, `input` for
// embeddings, `messages` for chat and messages. It is a slice of body (the
// body info was parsed from), not a copy, and nil when the field is absent.
func promptOf(body []byte, e endpoint, info *requestInfo) []byte {
	i := fieldMessages
	switch e {
	case endpointCompletions:
		i = fieldPrompt
	case endpointEmbeddings:
		i = fieldInput
	}
	s := info.prompts[i-numTypedFields]
	if s.n == 0 || s.at+s.n > len(body) {
		return nil
	}
	return body[s.at : s.at+s.n : s.at+s.n]
}

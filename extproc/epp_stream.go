package extproc

import (
	"errors"
	"fmt"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/picking"
)

// Process handles one request's ext_proc stream. The request counted on an
// endpoint by the pick is ended when the stream ends, whatever ends it.
func (e *EPP) Process(stream extprocsvcv3.ExternalProcessor_ProcessServer) error {
	s := eppStream{epp: e}
	e.active.Add(1)
	defer e.active.Add(-1)
	e.metrics.streamOpened()
	defer e.metrics.streamClosed()
	defer s.finish()
	for {
		req, err := stream.Recv()
		if end, err := streamEnd(err); end {
			return err
		}
		for _, resp := range s.handle(req) {
			if err := stream.Send(resp); err != nil {
				return fmt.Errorf("cannot send to envoy: %w", err)
			}
			if _, refused := resp.Response.(*extprocsvcv3.ProcessingResponse_ImmediateResponse); refused {
				return nil
			}
		}
	}
}

// eppStream is one request's state; used by its stream's goroutine only.
//
// When the pick happens depends on how Envoy sends the request body
// (protocol_config of the first message): BUFFERED and BUFFERED_PARTIAL at
// the body; FULL_DUPLEX_STREAMED (what Istio, kgateway and Envoy Gateway
// configure for an InferencePool) once the body has arrived, holding the
// headers answer until then and echoing the body back; with no body, or a
// STREAMED one that Envoy forwards before it could apply the pick, at the
// request headers, without prompt affinity.
type eppStream struct {
	epp       *EPP
	requestID string
	// subset is the subset hint's value when the data plane sent one.
	subset *structpb.Value
	// reqMode and respMode are the body modes Envoy announced.
	reqMode, respMode extprocv3.ProcessingMode_BodySendMode
	// holding: a full-duplex request body is being collected in body
	// (bounded by maxBody plus one chunk); the headers answer waits.
	holding bool
	body    []byte
	picked  bool
	res     picking.Result
	// served is the endpoint the request was moved to when Envoy reported
	// a fallback; it is ended instead of res.
	served *picking.Endpoint
	// out holds the answers to one message (at most three).
	out [3]*extprocsvcv3.ProcessingResponse
}

// handle answers one message from Envoy: usually one answer, none while a
// full-duplex body is collected, three when it is released (headers, body,
// trailers). The slice is valid until the next call.
func (s *eppStream) handle(req *extprocsvcv3.ProcessingRequest) []*extprocsvcv3.ProcessingResponse {
	s.noteSubset(req.GetMetadataContext())
	out := s.out[:0]
	switch r := req.Request.(type) {
	case *extprocsvcv3.ProcessingRequest_RequestHeaders:
		return s.onRequestHeaders(out, req, r.RequestHeaders)
	case *extprocsvcv3.ProcessingRequest_RequestBody:
		return s.onRequestBody(out, r.RequestBody)
	case *extprocsvcv3.ProcessingRequest_RequestTrailers:
		if s.holding {
			out = s.release(out, false)
			if s.answered(out) {
				return out
			}
		}
		return append(out, &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocsvcv3.TrailersResponse{}}})
	case *extprocsvcv3.ProcessingRequest_ResponseHeaders:
		s.onServed(req.GetMetadataContext())
		return append(out, &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocsvcv3.HeadersResponse{}}})
	case *extprocsvcv3.ProcessingRequest_ResponseBody:
		return append(out, s.bodyEcho(true, r.ResponseBody))
	case *extprocsvcv3.ProcessingRequest_ResponseTrailers:
		return append(out, &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocsvcv3.TrailersResponse{}}})
	}
	return append(out, s.fail(errors.New("unexpected ext_proc message")))
}

// onRequestHeaders notes the request id and the body modes, and picks now
// when no body will come in time; otherwise the pick waits for the body.
func (s *eppStream) onRequestHeaders(out []*extprocsvcv3.ProcessingResponse, req *extprocsvcv3.ProcessingRequest, h *extprocsvcv3.HttpHeaders) []*extprocsvcv3.ProcessingResponse {
	for _, hv := range h.GetHeaders().GetHeaders() {
		if hv.GetKey() == contract.RequestIDHeader {
			s.requestID = headerValue(hv)
			break
		}
	}
	if pc := req.GetProtocolConfig(); pc != nil {
		s.reqMode, s.respMode = pc.GetRequestBodyMode(), pc.GetResponseBodyMode()
	}
	switch {
	case h.GetEndOfStream() || s.reqMode == extprocv3.ProcessingMode_NONE || s.reqMode == extprocv3.ProcessingMode_STREAMED:
		common, md, refused := s.pick(picking.Request{})
		if refused != nil {
			return append(out, refused)
		}
		return append(out, requestHeadersAnswer(common, md))
	case s.reqMode == extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED:
		s.holding = true
		return out
	}
	return append(out, requestHeadersAnswer(nil, nil))
}

// onRequestBody picks at a buffered body, collects a full-duplex one, and
// lets later chunks through.
func (s *eppStream) onRequestBody(out []*extprocsvcv3.ProcessingResponse, b *extprocsvcv3.HttpBody) []*extprocsvcv3.ProcessingResponse {
	switch {
	case s.holding:
		s.body = append(s.body, b.GetBody()...)
		if !b.GetEndOfStream() && int64(len(s.body)) <= s.epp.maxBody {
			return out
		}
		// The whole body, or more than a request may hold: pick with
		// what arrived (a prefix that is not JSON gives no affinity).
		return s.release(out, b.GetEndOfStream())
	case s.picked:
		return append(out, s.bodyEcho(false, b))
	}
	common, md, refused := s.pick(eppRequest(b.GetBody()))
	if refused != nil {
		return append(out, refused)
	}
	return append(out, &extprocsvcv3.ProcessingResponse{
		Response:        &extprocsvcv3.ProcessingResponse_RequestBody{RequestBody: &extprocsvcv3.BodyResponse{Response: common}},
		DynamicMetadata: md,
	})
}

// release picks for a collected full-duplex body and answers the held
// request headers with the pick, then sends the body on (eos: it ends the
// request).
func (s *eppStream) release(out []*extprocsvcv3.ProcessingResponse, eos bool) []*extprocsvcv3.ProcessingResponse {
	s.holding = false
	body := s.body
	s.body = nil
	common, md, refused := s.pick(eppRequest(body))
	if refused != nil {
		return append(out, refused)
	}
	return append(out, requestHeadersAnswer(common, md), streamedBody(false, body, eos))
}

// answered reports whether out already ends the request (a refusal).
func (s *eppStream) answered(out []*extprocsvcv3.ProcessingResponse) bool {
	if len(out) == 0 {
		return false
	}
	_, refused := out[len(out)-1].Response.(*extprocsvcv3.ProcessingResponse_ImmediateResponse)
	return refused
}

// bodyEcho lets a body chunk through: echoed back in full-duplex mode,
// where Envoy forwards only what the service returns, else unchanged.
func (s *eppStream) bodyEcho(response bool, b *extprocsvcv3.HttpBody) *extprocsvcv3.ProcessingResponse {
	mode := s.reqMode
	if response {
		mode = s.respMode
	}
	if mode == extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED {
		return streamedBody(response, b.GetBody(), b.GetEndOfStream())
	}
	if response {
		return &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocsvcv3.BodyResponse{}}}
	}
	return &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_RequestBody{RequestBody: &extprocsvcv3.BodyResponse{}}}
}

// requestHeadersAnswer answers the request headers with common (nil: pass
// them unchanged) and the dynamic metadata md.
func requestHeadersAnswer(common *extprocsvcv3.CommonResponse, md *structpb.Struct) *extprocsvcv3.ProcessingResponse {
	return &extprocsvcv3.ProcessingResponse{
		Response:        &extprocsvcv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocsvcv3.HeadersResponse{Response: common}},
		DynamicMetadata: md,
	}
}

// streamedBody is a full-duplex body answer carrying body on.
func streamedBody(response bool, body []byte, eos bool) *extprocsvcv3.ProcessingResponse {
	br := &extprocsvcv3.BodyResponse{Response: &extprocsvcv3.CommonResponse{BodyMutation: &extprocsvcv3.BodyMutation{
		Mutation: &extprocsvcv3.BodyMutation_StreamedResponse{StreamedResponse: &extprocsvcv3.StreamedBodyResponse{Body: body, EndOfStream: eos}},
	}}}
	if response {
		return &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_ResponseBody{ResponseBody: br}}
	}
	return &extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_RequestBody{RequestBody: br}}
}

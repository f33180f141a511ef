// Package extproctest holds test doubles for code that serves ext_proc
// streams: an in-memory stream standing in for the gRPC one Envoy opens.
// It imports nothing of Streamgate, so the extproc package's own tests
// can use it.
package extproctest

import (
	"context"
	"io"

	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
)

// Stream is the server side of one ext_proc stream held in memory: Recv
// hands out Reqs in order, then io.EOF; Send records every answer in Sent.
// It is for one goroutine, as a gRPC stream's Recv and Send are.
type Stream struct {
	grpc.ServerStream
	Ctx  context.Context
	Reqs []*extprocsvcv3.ProcessingRequest
	Sent []*extprocsvcv3.ProcessingResponse
}

var _ extprocsvcv3.ExternalProcessor_ProcessServer = (*Stream)(nil)

// NewStream returns a stream that will deliver reqs under ctx.
func NewStream(ctx context.Context, reqs ...*extprocsvcv3.ProcessingRequest) *Stream {
	return &Stream{Ctx: ctx, Reqs: reqs}
}

// Context returns the stream's context.
func (s *Stream) Context() context.Context { return s.Ctx }

// Recv returns the next request, or io.EOF when none is left.
func (s *Stream) Recv() (*extprocsvcv3.ProcessingRequest, error) {
	if len(s.Reqs) == 0 {
		return nil, io.EOF
	}
	r := s.Reqs[0]
	s.Reqs = s.Reqs[1:]
	return r, nil
}

// Send records r.
func (s *Stream) Send(r *extprocsvcv3.ProcessingResponse) error {
	s.Sent = append(s.Sent, r)
	return nil
}

// Package fakekserve is Streamgate's fake KServe v2 gRPC model server
// (inference.GRPCInferenceService). Its models are decoupled: on a
// ModelStreamInfer stream each request gets several responses. It records
// the metadata and model names it receives and counts streams, messages and
// client cancellations, so end-to-end tests can check routing, header
// hygiene, ordering, flow control and cancellation through the gateway.
package fakekserve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/streamgate/streamgate/examples/fakekserve/inferencepb"
)

// Request parameters (ModelInferRequest.parameters) the fake models obey.
const (
	// ParamResponses is how many responses a streamed request gets (int64;
	// default Options.Responses).
	ParamResponses = "fake_responses"
	// ParamResponseBytes pads each response's raw output to this many bytes
	// (int64; default: the request's first raw input echoed).
	ParamResponseBytes = "fake_response_bytes"
	// ParamFail makes the server end the stream with an error after this
	// request's responses: "aborted" (gRPC status ABORTED).
	ParamFail = "fake_fail"
)

// Response parameters the fake models set.
const (
	// ParamIndex is the response's index among its request's responses.
	ParamIndex = "fake_index"
	// ParamFinal marks the last response to a request.
	ParamFinal = "triton_final_response"
	// ParamBackend names the server that answered.
	ParamBackend = "fake_backend"
)

// DefaultModel is served when Options.Models is empty.
const DefaultModel = "fake-kserve"

// Options configures a Server. The zero value is usable.
type Options struct {
	// Name is reported in every response's ParamBackend ("fakekserve" when empty).
	Name string
	// Models the server has; empty means {DefaultModel}. Requests for others
	// fail with NOT_FOUND.
	Models []string
	// Responses is how many responses each streamed request gets (default 3).
	Responses int
}

// Stats is a snapshot of the server's accounting.
type Stats struct {
	Streams      int64       // ModelStreamInfer streams opened
	Unary        int64       // ModelInfer calls
	Received     int64       // requests received on streams
	Sent         int64       // responses sent on streams
	Cancelled    int64       // streams whose client went away before the stream ended
	LastModel    string      // model_name of the last request received
	LastMetadata metadata.MD // request metadata of the last call
}

// Server is the fake model server. It is safe for concurrent use; create it
// with New and attach it to a grpc.Server with Register.
type Server struct {
	inferencepb.UnimplementedGRPCInferenceServiceServer

	opts      Options
	cancelled chan struct{}

	streams, unary, received, sent, cancels atomic.Int64

	mu        sync.Mutex
	lastModel string
	lastMD    metadata.MD
}

var _ inferencepb.GRPCInferenceServiceServer = (*Server)(nil)

// New returns a Server with opts.
func New(opts Options) *Server {
	if opts.Name == "" {
		opts.Name = "fakekserve"
	}
	if len(opts.Models) == 0 {
		opts.Models = []string{DefaultModel}
	}
	if opts.Responses <= 0 {
		opts.Responses = 3
	}
	return &Server{opts: opts, cancelled: make(chan struct{}, 1024)}
}

// Register adds the inference service to gs.
func (s *Server) Register(gs *grpc.Server) { inferencepb.RegisterGRPCInferenceServiceServer(gs, s) }

// Stats returns a snapshot of the accounting.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Streams: s.streams.Load(), Unary: s.unary.Load(), Received: s.received.Load(), Sent: s.sent.Load(),
		Cancelled: s.cancels.Load(), LastModel: s.lastModel, LastMetadata: s.lastMD.Copy()}
}

// Cancelled receives one value each time a stream's client goes away before
// the stream ended (buffered; values beyond the buffer are dropped).
func (s *Server) Cancelled() <-chan struct{} { return s.cancelled }

// ServerLive reports the server live.
func (s *Server) ServerLive(ctx context.Context, _ *inferencepb.ServerLiveRequest) (*inferencepb.ServerLiveResponse, error) {
	s.record(ctx, "")
	return &inferencepb.ServerLiveResponse{Live: true}, nil
}

// ServerReady reports the server ready.
func (s *Server) ServerReady(ctx context.Context, _ *inferencepb.ServerReadyRequest) (*inferencepb.ServerReadyResponse, error) {
	s.record(ctx, "")
	return &inferencepb.ServerReadyResponse{Ready: true}, nil
}

// ModelReady reports whether the server has the model.
func (s *Server) ModelReady(ctx context.Context, r *inferencepb.ModelReadyRequest) (*inferencepb.ModelReadyResponse, error) {
	s.record(ctx, r.GetName())
	return &inferencepb.ModelReadyResponse{Ready: s.hasModel(r.GetName())}, nil
}

// ModelMetadata describes a model: one BYTES input, one BYTES output.
func (s *Server) ModelMetadata(ctx context.Context, r *inferencepb.ModelMetadataRequest) (*inferencepb.ModelMetadataResponse, error) {
	s.record(ctx, r.GetName())
	if !s.hasModel(r.GetName()) {
		return nil, status.Errorf(codes.NotFound, "model %q is not served here", r.GetName())
	}
	t := func(n string) *inferencepb.ModelMetadataResponse_TensorMetadata {
		return &inferencepb.ModelMetadataResponse_TensorMetadata{Name: n, Datatype: "BYTES", Shape: []int64{-1}}
	}
	return &inferencepb.ModelMetadataResponse{Name: r.GetName(), Versions: []string{"1"}, Platform: "fake",
		Inputs:  []*inferencepb.ModelMetadataResponse_TensorMetadata{t("INPUT0")},
		Outputs: []*inferencepb.ModelMetadataResponse_TensorMetadata{t("OUTPUT0")}}, nil
}

// ModelInfer answers one request with its first response.
func (s *Server) ModelInfer(ctx context.Context, r *inferencepb.ModelInferRequest) (*inferencepb.ModelInferResponse, error) {
	s.unary.Add(1)
	s.record(ctx, r.GetModelName())
	if !s.hasModel(r.GetModelName()) {
		return nil, status.Errorf(codes.NotFound, "model %q is not served here", r.GetModelName())
	}
	return s.response(r, 0, 1), nil
}

// ModelStreamInfer answers each request with several responses, in order,
// until the client half-closes. Sends block under HTTP/2 flow control, so a
// slow reader slows the model.
func (s *Server) ModelStreamInfer(stream inferencepb.GRPCInferenceService_ModelStreamInferServer) error {
	s.streams.Add(1)
	ctx := stream.Context()
	s.record(ctx, "")
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return s.ended(ctx, err)
		}
		s.received.Add(1)
		s.setModel(r.GetModelName())
		if !s.hasModel(r.GetModelName()) {
			msg := &inferencepb.ModelStreamInferResponse{ErrorMessage: fmt.Sprintf("model %q is not served here", r.GetModelName())}
			if err := stream.Send(msg); err != nil {
				return s.ended(ctx, err)
			}
			continue
		}
		n := int(intParam(r, ParamResponses, int64(s.opts.Responses)))
		for i := range n {
			if err := stream.Send(&inferencepb.ModelStreamInferResponse{InferResponse: s.response(r, i, n)}); err != nil {
				return s.ended(ctx, err)
			}
			s.sent.Add(1)
		}
		if p := r.GetParameters()[ParamFail]; p.GetStringParam() == "aborted" {
			return status.Error(codes.Aborted, "fake model aborted the stream")
		}
	}
}

// ended counts a stream cut short by its client and returns err.
func (s *Server) ended(ctx context.Context, err error) error {
	if ctx.Err() != nil || status.Code(err) == codes.Canceled {
		s.cancels.Add(1)
		select {
		case s.cancelled <- struct{}{}:
		default:
		}
	}
	return err
}

func (s *Server) response(r *inferencepb.ModelInferRequest, i, n int) *inferencepb.ModelInferResponse {
	out := []byte(nil)
	if raw := r.GetRawInputContents(); len(raw) > 0 {
		out = raw[0]
	}
	if size := intParam(r, ParamResponseBytes, -1); size >= 0 {
		out = make([]byte, size)
	}
	return &inferencepb.ModelInferResponse{
		ModelName: r.GetModelName(), ModelVersion: "1", Id: r.GetId(),
		Parameters: map[string]*inferencepb.InferParameter{
			ParamIndex:   {ParameterChoice: &inferencepb.InferParameter_Int64Param{Int64Param: int64(i)}},
			ParamFinal:   {ParameterChoice: &inferencepb.InferParameter_BoolParam{BoolParam: i == n-1}},
			ParamBackend: {ParameterChoice: &inferencepb.InferParameter_StringParam{StringParam: s.opts.Name}},
		},
		Outputs:           []*inferencepb.ModelInferResponse_InferOutputTensor{{Name: "OUTPUT0", Datatype: "BYTES", Shape: []int64{1}}},
		RawOutputContents: [][]byte{out},
	}
}

func (s *Server) hasModel(name string) bool { return slices.Contains(s.opts.Models, name) }

func (s *Server) record(ctx context.Context, model string) {
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	s.lastMD = md.Copy()
	if model != "" {
		s.lastModel = model
	}
	s.mu.Unlock()
}

func (s *Server) setModel(model string) {
	s.mu.Lock()
	s.lastModel = model
	s.mu.Unlock()
}

// intParam reads an int64 request parameter; a string holding a number is
// accepted too.
func intParam(r *inferencepb.ModelInferRequest, name string, def int64) int64 {
	p, ok := r.GetParameters()[name]
	if !ok {
		return def
	}
	if v, ok := p.GetParameterChoice().(*inferencepb.InferParameter_Int64Param); ok {
		return v.Int64Param
	}
	if v, err := strconv.ParseInt(p.GetStringParam(), 10, 64); err == nil {
		return v
	}
	return def
}

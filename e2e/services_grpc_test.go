package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/streamgate/streamgate/extproc/auth"
)

// streamService is a small gRPC service with every kind of call (gRPC's
// own interop TestService): unary echo, a server stream of the sizes
// asked, a client stream summed, and a bidi echo that reports when the
// client's cancellation reached it.
type streamService struct {
	testgrpc.UnimplementedTestServiceServer
	cancelled chan struct{}
}

func (s *streamService) UnaryCall(_ context.Context, r *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{Payload: r.GetPayload()}, nil
}

func (s *streamService) StreamingOutputCall(r *testgrpc.StreamingOutputCallRequest, st grpc.ServerStreamingServer[testgrpc.StreamingOutputCallResponse]) error {
	for _, p := range r.GetResponseParameters() {
		time.Sleep(20 * time.Millisecond)
		if err := st.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
			return err
		}
	}
	return nil
}

func (s *streamService) StreamingInputCall(st grpc.ClientStreamingServer[testgrpc.StreamingInputCallRequest, testgrpc.StreamingInputCallResponse]) error {
	var n int32
	for {
		m, err := st.Recv()
		if err == io.EOF {
			return st.SendAndClose(&testgrpc.StreamingInputCallResponse{AggregatedPayloadSize: n})
		}
		if err != nil {
			return err
		}
		n += int32(len(m.GetPayload().GetBody()))
	}
}

func (s *streamService) FullDuplexCall(st grpc.BidiStreamingServer[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse]) error {
	for {
		m, err := st.Recv()
		if err != nil {
			if grpcstatus.Code(err) == codes.Canceled || st.Context().Err() != nil {
				close(s.cancelled)
			}
			return err
		}
		if err := st.Send(&testgrpc.StreamingOutputCallResponse{Payload: m.GetPayload()}); err != nil {
			return err
		}
	}
}

// grpcServiceConfig mounts the stream service (%[1]s, HTTP/2) on its gRPC
// service path: acme may call everything, one call at a time; beta only
// the unary method.
const grpcServiceConfig = listeners + `backends:
  - name: streams
    protocol: http
    http2: true
    endpoints: [%[1]s]
services:
  - name: streams
    backend: streams
    path_prefix: /grpc.testing.TestService/
    operations:
      - {name: unary, methods: [POST], paths: [/grpc.testing.TestService/UnaryCall]}
      - {name: streams, methods: [POST], paths: ["/grpc.testing.TestService/Streaming*", /grpc.testing.TestService/FullDuplexCall]}
auth:
  tenants:
    - name: acme
      services: [{name: streams, operations: ["*"]}]
      api_keys: [{hash: %[2]s}]
    - name: beta
      services: [{name: streams, operations: [unary]}]
      api_keys: [{hash: %[3]s}]
limits:
  queue: {max_wait: 100ms}
  tenants:
    - name: acme
      services: [{name: streams, concurrent_requests: 1}]
`

// TestGRPCServiceStreams: unary, server-, client- and bidi-streaming calls
// of a gRPC service pass through the policy path; the client's
// cancellation of a bidi stream reaches the service; per-method grants,
// missing keys and unmounted methods are gRPC statuses; a call holds its
// concurrency slot until it ends.
func TestGRPCServiceStreams(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	svc := &streamService{cancelled: make(chan struct{})}
	srv := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(srv, svc)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	g := startGateway(t, fmt.Sprintf(grpcServiceConfig, l.Addr().String(), auth.HashKey(svcKeyAcme), auth.HashKey(svcKeyBeta)))
	conn, err := grpc.NewClient(hostPort(g.gateway), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	client := testgrpc.NewTestServiceClient(conn)
	as := func(ctx context.Context, key string) context.Context {
		if key == "" {
			return ctx
		}
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	t.Run("unary", func(t *testing.T) {
		r, err := client.UnaryCall(as(ctx, svcKeyBeta), &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("hi")}})
		require.NoError(t, err)
		assert.Equal(t, []byte("hi"), r.GetPayload().GetBody())
	})
	t.Run("server stream", func(t *testing.T) {
		st, err := client.StreamingOutputCall(as(ctx, svcKeyAcme), &testgrpc.StreamingOutputCallRequest{
			ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1}, {Size: 2}, {Size: 3}, {Size: 4}, {Size: 5}}})
		require.NoError(t, err)
		var sizes []int
		for {
			m, err := st.Recv()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			sizes = append(sizes, len(m.GetPayload().GetBody()))
		}
		assert.Equal(t, []int{1, 2, 3, 4, 5}, sizes)
	})
	t.Run("client stream", func(t *testing.T) {
		st, err := client.StreamingInputCall(as(ctx, svcKeyAcme))
		require.NoError(t, err)
		for _, n := range []int{10, 20, 30} {
			require.NoError(t, st.Send(&testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: make([]byte, n)}}))
		}
		r, err := st.CloseAndRecv()
		require.NoError(t, err)
		assert.EqualValues(t, 60, r.GetAggregatedPayloadSize())
	})
	t.Run("bidi, cancelled by the client, holds the slot until it ends", func(t *testing.T) {
		bctx, bcancel := context.WithCancel(as(ctx, svcKeyAcme))
		st, err := client.FullDuplexCall(bctx)
		require.NoError(t, err)
		for i := range 3 {
			body := []byte(fmt.Sprintf("ping %d", i))
			require.NoError(t, st.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: body}}))
			m, err := st.Recv()
			require.NoError(t, err)
			assert.Equal(t, body, m.GetPayload().GetBody())
		}
		_, err = client.UnaryCall(as(ctx, svcKeyAcme), &testgrpc.SimpleRequest{})
		assert.Equal(t, codes.ResourceExhausted, grpcstatus.Code(err), "one call at a time: %v", err)
		bcancel()
		select {
		case <-svc.cancelled:
		case <-time.After(5 * time.Second):
			t.Fatal("the client's cancellation did not reach the service")
		}
		require.Eventually(t, func() bool {
			_, err := client.UnaryCall(as(ctx, svcKeyAcme), &testgrpc.SimpleRequest{})
			return err == nil
		}, 5*time.Second, 20*time.Millisecond, "the slot came back when the stream ended")
	})
	t.Run("refusals are gRPC statuses", func(t *testing.T) {
		st, err := client.FullDuplexCall(as(ctx, svcKeyBeta))
		if err == nil {
			_, err = st.Recv()
		}
		assert.Equal(t, codes.PermissionDenied, grpcstatus.Code(err), "%v", err)
		_, err = client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		assert.Equal(t, codes.Unauthenticated, grpcstatus.Code(err), "%v", err)
		hst, err := client.HalfDuplexCall(as(ctx, svcKeyAcme))
		if err == nil {
			_, err = hst.Recv()
		}
		assert.Equal(t, codes.Unimplemented, grpcstatus.Code(err), "a method no operation names: %v", err)
	})
}

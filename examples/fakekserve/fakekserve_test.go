package fakekserve_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/streamgate/streamgate/examples/fakekserve"
	"github.com/streamgate/streamgate/examples/fakekserve/inferencepb"
)

func start(t *testing.T, opts fakekserve.Options) (*fakekserve.Server, inferencepb.GRPCInferenceServiceClient) {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer()
	s := fakekserve.New(opts)
	s.Register(gs)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	cc, err := grpc.NewClient("passthrough:///buf",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return s, inferencepb.NewGRPCInferenceServiceClient(cc)
}

func TestStreamAnswersEachRequestSeveralTimesInOrder(t *testing.T) {
	s, c := start(t, fakekserve.Options{Name: "k1", Responses: 3})
	ctx := metadata.AppendToOutgoingContext(t.Context(), "x-test", "v")
	st, err := c.ModelStreamInfer(ctx)
	require.NoError(t, err)
	for _, id := range []string{"r1", "r2"} {
		require.NoError(t, st.Send(&inferencepb.ModelInferRequest{ModelName: fakekserve.DefaultModel, Id: id, RawInputContents: [][]byte{[]byte(id)}}))
	}
	require.NoError(t, st.CloseSend())
	var got []string
	for {
		r, err := st.Recv()
		if err != nil {
			break
		}
		ir := r.GetInferResponse()
		got = append(got, ir.GetId()+":"+string(ir.GetRawOutputContents()[0])+":"+
			map[bool]string{true: "final", false: "more"}[ir.GetParameters()[fakekserve.ParamFinal].GetBoolParam()])
	}
	assert.Equal(t, []string{"r1:r1:more", "r1:r1:more", "r1:r1:final", "r2:r2:more", "r2:r2:more", "r2:r2:final"}, got)
	stats := s.Stats()
	assert.Equal(t, int64(1), stats.Streams)
	assert.Equal(t, int64(2), stats.Received)
	assert.Equal(t, int64(6), stats.Sent)
	assert.Equal(t, []string{"v"}, stats.LastMetadata.Get("x-test"))
}

func TestStreamUnknownModelAndAbort(t *testing.T) {
	_, c := start(t, fakekserve.Options{})
	st, err := c.ModelStreamInfer(t.Context())
	require.NoError(t, err)
	require.NoError(t, st.Send(&inferencepb.ModelInferRequest{ModelName: "nope"}))
	r, err := st.Recv()
	require.NoError(t, err)
	assert.Contains(t, r.GetErrorMessage(), "nope")
	require.NoError(t, st.Send(&inferencepb.ModelInferRequest{ModelName: fakekserve.DefaultModel, Parameters: map[string]*inferencepb.InferParameter{
		fakekserve.ParamFail:      {ParameterChoice: &inferencepb.InferParameter_StringParam{StringParam: "aborted"}},
		fakekserve.ParamResponses: {ParameterChoice: &inferencepb.InferParameter_Int64Param{Int64Param: 1}},
	}}))
	_, err = st.Recv()
	require.NoError(t, err)
	_, err = st.Recv()
	assert.Equal(t, codes.Aborted, status.Code(err))
}

func TestStreamCancelIsCounted(t *testing.T) {
	s, c := start(t, fakekserve.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	st, err := c.ModelStreamInfer(ctx)
	require.NoError(t, err)
	require.NoError(t, st.Send(&inferencepb.ModelInferRequest{ModelName: fakekserve.DefaultModel}))
	_, err = st.Recv()
	require.NoError(t, err)
	cancel()
	select {
	case <-s.Cancelled():
	case <-time.After(5 * time.Second):
		t.Fatal("server did not see the cancel")
	}
	assert.Equal(t, int64(1), s.Stats().Cancelled)
}

func TestUnary(t *testing.T) {
	s, c := start(t, fakekserve.Options{Models: []string{"m"}})
	ctx := t.Context()
	live, err := c.ServerLive(ctx, &inferencepb.ServerLiveRequest{})
	require.NoError(t, err)
	assert.True(t, live.GetLive())
	ready, err := c.ModelReady(ctx, &inferencepb.ModelReadyRequest{Name: "m"})
	require.NoError(t, err)
	assert.True(t, ready.GetReady())
	ready, err = c.ModelReady(ctx, &inferencepb.ModelReadyRequest{Name: "x"})
	require.NoError(t, err)
	assert.False(t, ready.GetReady())
	md, err := c.ModelMetadata(ctx, &inferencepb.ModelMetadataRequest{Name: "m"})
	require.NoError(t, err)
	assert.Equal(t, "OUTPUT0", md.GetOutputs()[0].GetName())
	_, err = c.ModelMetadata(ctx, &inferencepb.ModelMetadataRequest{Name: "x"})
	assert.Equal(t, codes.NotFound, status.Code(err))
	resp, err := c.ModelInfer(ctx, &inferencepb.ModelInferRequest{ModelName: "m", Id: "u", RawInputContents: [][]byte{[]byte("hi")}})
	require.NoError(t, err)
	assert.Equal(t, "hi", string(resp.GetRawOutputContents()[0]))
	assert.Equal(t, int64(1), s.Stats().Unary)
	assert.Equal(t, "m", s.Stats().LastModel)
}

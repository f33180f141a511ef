package extproc

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	alsdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// fakeALSStream is an access log stream from a chosen peer that sends msgs
// and then ends.
type fakeALSStream struct {
	grpc.ServerStream
	ctx  context.Context
	msgs []*alsv3.StreamAccessLogsMessage
}

func (f *fakeALSStream) Context() context.Context     { return f.ctx }
func (f *fakeALSStream) SetHeader(metadata.MD) error  { return nil }
func (f *fakeALSStream) SendHeader(metadata.MD) error { return nil }
func (f *fakeALSStream) SetTrailer(metadata.MD)       {}
func (f *fakeALSStream) SendAndClose(*alsv3.StreamAccessLogsResponse) error {
	return nil
}

func (f *fakeALSStream) Recv() (*alsv3.StreamAccessLogsMessage, error) {
	if len(f.msgs) == 0 {
		return nil, status.Error(codes.Canceled, "done")
	}
	m := f.msgs[0]
	f.msgs = f.msgs[1:]
	return m, nil
}

var _ alsv3.AccessLogService_StreamAccessLogsServer = (*fakeALSStream)(nil)

func alsMessage(t *testing.T, model string, reqBytes, respBytes uint64) *alsv3.StreamAccessLogsMessage {
	t.Helper()
	e := grpcLogEntry(t, model, "triton", 1, 1)
	e.Request.RequestBodyBytes, e.Response.ResponseBodyBytes = reqBytes, respBytes
	return &alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{
		HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: []*alsdatav3.HTTPAccessLogEntry{e}},
	}}
}

// TestAccessLogRefusesNonLocalPeer: issue 23 finding 9. Anyone who could
// reach the ext_proc port could stream made-up access log entries into the
// gRPC metrics; only a loopback or unix-socket peer (the local Envoy) may.
func TestAccessLogRefusesNonLocalPeer(t *testing.T) {
	tests := map[string]struct {
		addr net.Addr
		ok   bool
	}{
		"pod network peer": {addr: &net.TCPAddr{IP: net.ParseIP("10.0.0.5"), Port: 41000}},
		"public peer":      {addr: &net.TCPAddr{IP: net.ParseIP("203.0.113.9"), Port: 41000}},
		"no peer":          {},
		"loopback v4":      {addr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 41000}, ok: true},
		"loopback v6":      {addr: &net.TCPAddr{IP: net.ParseIP("::1"), Port: 41000}, ok: true},
		"unix socket peer": {addr: &net.UnixAddr{Name: "@", Net: "unix"}, ok: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := NewMetrics(prometheus.NewRegistry())
			ctx := context.Background()
			if tc.addr != nil {
				ctx = peer.NewContext(ctx, &peer.Peer{Addr: tc.addr})
			}
			err := NewAccessLog(m, fixtureRoutes(t), nil).StreamAccessLogs(&fakeALSStream{ctx: ctx, msgs: []*alsv3.StreamAccessLogsMessage{alsMessage(t, "resnet", 100, 200)}})
			got := testutil.ToFloat64(m.grpcBytes.WithLabelValues("resnet", "triton", "request"))
			if tc.ok {
				require.NoError(t, err)
				assert.InDelta(t, 100, got, 0)
				return
			}
			assert.Equal(t, codes.PermissionDenied, status.Code(err))
			assert.Zero(t, got, "a refused peer's entries are not counted")
		})
	}
}

// TestAccessLogDropsImplausibleCounts: issue 23 finding 9. A fabricated
// entry claiming 1e12 bytes, sent over a real gRPC connection, leaves the
// byte counters as they were; a plausible entry on the same stream counts.
func TestAccessLogDropsImplausibleCounts(t *testing.T) {
	for name, network := range map[string]string{"loopback": "tcp", "unix socket": "unix"} {
		t.Run(name, func(t *testing.T) { testImplausibleCounts(t, network) })
	}
}

func testImplausibleCounts(t *testing.T, network string) {
	m := NewMetrics(prometheus.NewRegistry())
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "extproc.sock")
	}
	lis, err := net.Listen(network, addr)
	require.NoError(t, err)
	target := lis.Addr().String()
	if network == "unix" {
		target = "unix:" + addr
	}
	gs := grpc.NewServer()
	alsv3.RegisterAccessLogServiceServer(gs, NewAccessLog(m, fixtureRoutes(t), nil))
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()

	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	stream, err := alsv3.NewAccessLogServiceClient(conn).StreamAccessLogs(context.Background())
	require.NoError(t, err)
	require.NoError(t, stream.Send(alsMessage(t, "resnet", 1e12, 1e12)))
	require.NoError(t, stream.Send(alsMessage(t, "resnet", maxCallBytes+1, 5)))
	require.NoError(t, stream.Send(alsMessage(t, "resnet", 100, 200)))
	// The service never answers (neither does Envoy expect it to): the
	// stream ends when the server has read every entry.
	_, err = stream.CloseAndRecv()
	require.NotEqual(t, codes.PermissionDenied, status.Code(err), "a loopback peer is accepted")

	assert.InDelta(t, 100, testutil.ToFloat64(m.grpcBytes.WithLabelValues("resnet", "triton", "request")), 0)
	assert.InDelta(t, 200, testutil.ToFloat64(m.grpcBytes.WithLabelValues("resnet", "triton", "response")), 0)
	assert.InDelta(t, 1, testutil.ToFloat64(m.grpcMessages.WithLabelValues("resnet", "triton", "request")), 0)
}

// fixtureRoutes is the gRPC fixture's routing table, which names the
// resnet model and the triton cluster the entries above claim.
func fixtureRoutes(t *testing.T) func() *Routes {
	routes, _, _ := newGRPCFixture(t)
	return func() *Routes { return routes }
}

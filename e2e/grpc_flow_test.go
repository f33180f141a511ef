package e2e

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/streamgate/streamgate/examples/fakekserve"
	"github.com/streamgate/streamgate/examples/fakekserve/inferencepb"
)

// envoyAllocated reads the bytes Envoy's allocator holds from its admin API.
func envoyAllocated(t *testing.T, admin string) int64 {
	t.Helper()
	var m struct {
		Allocated string `json:"allocated"`
	}
	require.NoError(t, json.Unmarshal([]byte(get(t, admin+"/memory")), &m))
	n, err := strconv.ParseInt(m.Allocated, 10, 64)
	require.NoError(t, err)
	return n
}

// TestGRPCSlowReaderIsBounded opens bidi streams whose clients stop reading
// while the backend has far more to send than any buffer should hold. HTTP/2
// flow control must stall the backend: its sends stop advancing, and Envoy's
// memory stays bounded. Then one stream is drained to its end.
func TestGRPCSlowReaderIsBounded(t *testing.T) {
	const (
		streams   = 10
		responses = 2000
		size      = 32 << 10 // 64 MiB per stream if nothing pushed back
	)
	g := startGRPCGateway(t)
	// A fixed 64 KiB client window (it turns off grpc-go's BDP window
	// growth) keeps the client library from buffering megabytes itself.
	conn, err := grpc.NewClient(strings.TrimPrefix(g.gateway, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(1<<16), grpc.WithInitialConnWindowSize(1<<24))
	require.NoError(t, err)
	defer conn.Close()
	client := inferencepb.NewGRPCInferenceServiceClient(conn)
	baseline := envoyAllocated(t, g.admin)
	before := g.kserve.Stats().Sent
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var open []inferencepb.GRPCInferenceService_ModelStreamInferClient
	for i := range streams {
		st, err := client.ModelStreamInfer(call(ctx, "resnet", grpcKeyAcme))
		require.NoError(t, err)
		require.NoError(t, st.Send(inferRequest("resnet", strconv.Itoa(i), map[string]int64{
			fakekserve.ParamResponses: responses, fakekserve.ParamResponseBytes: size})))
		open = append(open, st)
	}
	// Let the backend push as far as flow control allows: wait until its
	// count of sent responses stops advancing for a second (four polls),
	// within 20 s. A backend flow control does not stop sends all
	// 20,000 responses (640 MiB) and never holds still that long.
	later := waitStalled(t, func() int64 { return g.kserve.Stats().Sent - before }, 20*time.Second)
	require.Less(t, later, int64(streams*responses), "the backend must be stalled, not done")
	grown := envoyAllocated(t, g.admin) - baseline
	perStream := float64(later*size) / streams / (1 << 20)
	t.Logf("slow readers: %d streams, backend sent %d of %d responses (%.1f MiB per stream of %d MiB wanted); Envoy allocated %+.1f MiB over baseline %.1f MiB",
		streams, later, streams*responses, perStream, responses*size>>20, float64(grown)/(1<<20), float64(baseline)/(1<<20))
	assert.Less(t, perStream, 4.0, "per-stream buffering must be bounded by flow control windows")
	assert.Less(t, grown, int64(64<<20), "Envoy memory must stay bounded with slow readers")

	// A slow reader still gets everything, in order.
	start := time.Now()
	for j := range responses {
		r, err := open[0].Recv()
		require.NoError(t, err, "response %d", j)
		require.Equal(t, int64(j), r.GetInferResponse().GetParameters()[fakekserve.ParamIndex].GetInt64Param())
		require.Len(t, r.GetInferResponse().GetRawOutputContents()[0], size)
	}
	t.Logf("drained one stream's %d MiB in %v while %d others stayed stalled", responses*size>>20, time.Since(start), streams-1)
}

// waitStalled polls count every 250 ms until it holds still for four polls
// in a row and returns it; it fails the test when limit passes first.
func waitStalled(t *testing.T, count func() int64, limit time.Duration) int64 {
	t.Helper()
	deadline := time.Now().Add(limit)
	last, still := count(), 0
	for still < 4 {
		require.True(t, time.Now().Before(deadline), "still sending after %v (%d sent)", limit, last)
		time.Sleep(250 * time.Millisecond)
		if n := count(); n == last {
			still++
		} else {
			last, still = n, 0
		}
	}
	return last
}

// TestGRPCIdleTimeout: the stream idle timeout ends a silent bidi stream but
// never one that keeps moving, however long it lives.
func TestGRPCIdleTimeout(t *testing.T) {
	g := startGRPCGateway(t, "  stream_idle_timeout: 1s\n")
	active, err := g.client.ModelStreamInfer(call(t.Context(), "resnet", grpcKeyAcme))
	require.NoError(t, err)
	start := time.Now()
	for i := 0; time.Since(start) < 3*time.Second; i++ {
		require.NoError(t, active.Send(inferRequest("resnet", strconv.Itoa(i), map[string]int64{fakekserve.ParamResponses: 1})))
		_, err := active.Recv()
		require.NoError(t, err, "an active stream must outlive the idle timeout (after %v)", time.Since(start))
		time.Sleep(300 * time.Millisecond)
	}
	require.NoError(t, active.CloseSend())

	silent, err := g.client.ModelStreamInfer(call(t.Context(), "resnet", grpcKeyAcme))
	require.NoError(t, err)
	require.NoError(t, silent.Send(inferRequest("resnet", "s", map[string]int64{fakekserve.ParamResponses: 1})))
	_, err = silent.Recv()
	require.NoError(t, err)
	start = time.Now()
	_, err = silent.Recv()
	require.Error(t, err)
	t.Logf("silent stream ended after %v: %v", time.Since(start), err)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Greater(t, time.Since(start), 500*time.Millisecond)
}

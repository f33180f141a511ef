package main

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/streamgate/streamgate/examples/fakekserve"
	"github.com/streamgate/streamgate/examples/fakekserve/inferencepb"
)

func TestRunServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", fakekserve.Options{Name: "k-z", Models: []string{"m"}, Responses: 2}, pw)
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "fakekserve k-z listening on ")
	require.True(t, ok && !strings.HasSuffix(addr, ":0"), "announcement %q, want the real listening address", line)

	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer cc.Close()
	h, err := healthpb.NewHealthClient(cc).Check(t.Context(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, h.GetStatus())
	st, err := inferencepb.NewGRPCInferenceServiceClient(cc).ModelStreamInfer(t.Context())
	require.NoError(t, err)
	require.NoError(t, st.Send(&inferencepb.ModelInferRequest{ModelName: "m", Id: "1"}))
	require.NoError(t, st.CloseSend())
	n := 0
	for {
		r, err := st.Recv()
		if err != nil {
			break
		}
		assert.Equal(t, "k-z", r.GetInferResponse().GetParameters()[fakekserve.ParamBackend].GetStringParam())
		n++
	}
	assert.Equal(t, 2, n)

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/streamgate/streamgate/examples/fakekserve/inferencepb"
)

// TestGRPCConcurrencyLimit: a tenant limited to 2 concurrent streams holds
// a slot for each open bidi stream; a third is refused RESOURCE_EXHAUSTED
// with retry info, and a slot is free again once a stream ends.
func TestGRPCConcurrencyLimit(t *testing.T) {
	g := startGRPCGatewayWith(t, `limits:
  queue: {size: 4, max_wait: 200ms}
  tenants:
    - {name: acme, concurrent_streams: 2}
`)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	open := func() inferencepb.GRPCInferenceService_ModelStreamInferClient {
		st, err := g.client.ModelStreamInfer(call(ctx, "resnet", grpcKeyAcme))
		require.NoError(t, err)
		require.NoError(t, st.Send(inferRequest("resnet", "x", nil)))
		_, err = st.Recv()
		require.NoError(t, err, "an admitted stream works")
		return st
	}
	first, second := open(), open()

	st, err := g.client.ModelStreamInfer(call(ctx, "resnet", grpcKeyAcme))
	require.NoError(t, err)
	_, err = st.Recv()
	s, _ := grpcstatus.FromError(err)
	require.Equal(t, codes.ResourceExhausted, s.Code(), "third stream: %v", err)
	var retry *errdetails.RetryInfo
	for _, d := range s.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri
		}
	}
	require.NotNil(t, retry, "the refusal says when to retry")
	assert.Positive(t, retry.GetRetryDelay().AsDuration())

	// Ending one stream frees its slot.
	require.NoError(t, first.CloseSend())
	for {
		if _, err := first.Recv(); err != nil {
			break
		}
	}
	require.Eventually(t, func() bool {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		st, err := g.client.ModelStreamInfer(call(c, "resnet", grpcKeyAcme))
		if err != nil {
			return false
		}
		if st.Send(inferRequest("resnet", "y", nil)) != nil {
			return false
		}
		_, err = st.Recv()
		return err == nil
	}, 5*time.Second, 50*time.Millisecond, "a slot is free after a stream ended")
	_ = second
}

package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// TestSecurityGRPCMethodAllowList (issue 23, finding 6): only the KServe v2
// inference and metadata methods reach a backend by default. Triton's
// repository and shared-memory methods are refused with PERMISSION_DENIED
// unless the backend's grpc_methods enables them, made-up methods with
// UNIMPLEMENTED, both by the gateway; ModelInfer still works.
func TestSecurityGRPCMethodAllowList(t *testing.T) {
	cfg := strings.Replace(grpcConfig, "    credential: {header: authorization, env: SG_E2E_KSERVE}\n",
		"    credential: {header: authorization, env: SG_E2E_KSERVE}\n    grpc_methods: [RepositoryIndex]\n", 1)
	require.NotEqual(t, grpcConfig, cfg)
	g := startGRPCGatewayFrom(t, cfg)
	ctx := call(t.Context(), "resnet", grpcKeyAcme)

	resp, err := g.client.ModelInfer(ctx, inferRequest("resnet", "ok", nil))
	require.NoError(t, err)
	assert.Equal(t, "in-ok", string(resp.GetRawOutputContents()[0]))

	invoke := func(method string) *grpcstatus.Status {
		err := g.conn.Invoke(ctx, inferServiceMD+method, &emptypb.Empty{}, &emptypb.Empty{})
		require.Error(t, err, method)
		return grpcstatus.Convert(err)
	}
	for _, m := range []string{"RepositoryModelLoad", "RepositoryModelUnload", "SystemSharedMemoryRegister", "CudaSharedMemoryRegister"} {
		st := invoke(m)
		assert.Equal(t, codes.PermissionDenied, st.Code(), m)
		assert.Contains(t, st.Message(), "is not enabled for the model `resnet`", m)
	}
	for _, m := range []string{"ModelInferEverything", "ModelInfer/x", strings.Repeat("x", 300)} {
		st := invoke(m)
		assert.Equal(t, codes.Unimplemented, st.Code(), m)
		assert.Contains(t, st.Message(), "The gateway does not serve the gRPC method", "refused by the gateway, not the backend")
	}
	// Enabled on the backend: forwarded (the fake server does not implement it).
	st := invoke("RepositoryIndex")
	assert.Equal(t, codes.Unimplemented, st.Code())
	assert.Contains(t, st.Message(), "unknown method RepositoryIndex", "answered by the backend")
}

// TestSecurityGRPCPathsAddNoMetricSeries (issue 23, finding 5): gRPC calls to
// made-up long paths, without credentials, do not grow /metrics: each used
// to add a streamgate_grpc_streams_total series labelled with its path.
func TestSecurityGRPCPathsAddNoMetricSeries(t *testing.T) {
	g := startGRPCGateway(t)
	series := func() (int, int) {
		body := get(t, g.metrics+"/metrics")
		n := 0
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "streamgate_grpc_streams_total{") {
				n++
			}
		}
		return n, len(body)
	}
	// The first refusal creates the one "other" series.
	call := func(i int) {
		path := fmt.Sprintf("%s%d-%s", inferServiceMD, i, strings.Repeat("p", 2000))
		if i%2 == 1 {
			path = fmt.Sprintf("/made.up%d.Service/%s", i, strings.Repeat("q", 2000))
		}
		err := g.conn.Invoke(t.Context(), path, &emptypb.Empty{}, &emptypb.Empty{})
		assert.Equal(t, codes.Unauthenticated, grpcstatus.Code(err), "refused before authentication is checked? %v", err)
	}
	call(0)
	call(1)
	n0, size0 := series()
	for i := 2; i < 100; i++ {
		call(i)
	}
	n1, size1 := series()
	assert.Equal(t, n0, n1, "no new series")
	assert.Less(t, size1-size0, 200, "/metrics grew from %d to %d bytes", size0, size1)
	assert.False(t, strings.Contains(get(t, g.metrics+"/metrics"), strings.Repeat("p", 100)), "a client's path in /metrics")
}

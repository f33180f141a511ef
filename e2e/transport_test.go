package e2e

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/examples/fakekserve/inferencepb"
)

// TestRunPutsExtProcOnAPrivateUnixSocket: with extproc.listen left unset,
// `streamgate run` serves ext_proc on a unix socket in a directory only its
// user may enter and points Envoy's ext_proc cluster there. Everything that
// shares the cluster keeps working on it: the main filter (auth, limits), the
// usage tap (it needs one fixed address, which a socket is) and the gRPC
// access log service. The TCP default port is not opened.
func TestRunPutsExtProcOnAPrivateUnixSocket(t *testing.T) {
	base := strings.Replace(grpcConfig, "extproc:\n  listen: {{.ExtProc}}\n", "", 1)
	require.NotEqual(t, grpcConfig, base)
	g := startGRPCGatewayFrom(t, base+`limits:
  tokenizers: [{model: model-a, encoding: o200k_base}]
  tenants:
    - name: acme
      total_tokens_per_minute: 10000000
`)

	t.Run("Envoy reaches ext_proc over a private socket", func(t *testing.T) {
		var clusters struct {
			ClusterStatuses []struct {
				Name         string `json:"name"`
				HostStatuses []struct {
					Address struct {
						Pipe struct{ Path string } `json:"pipe"`
					} `json:"address"`
				} `json:"host_statuses"`
			} `json:"cluster_statuses"`
		}
		require.NoError(t, json.Unmarshal([]byte(get(t, g.admin+"/clusters?format=json")), &clusters))
		var sock string
		for _, c := range clusters.ClusterStatuses {
			if c.Name == contract.ExtProcCluster && len(c.HostStatuses) == 1 {
				sock = c.HostStatuses[0].Address.Pipe.Path
			}
		}
		require.NotEmpty(t, sock, "the ext_proc cluster's host is a unix socket")
		fi, err := os.Stat(sock)
		require.NoError(t, err)
		assert.Equal(t, os.ModeSocket, fi.Mode().Type())
		dir, err := os.Stat(filepath.Dir(sock))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o700), dir.Mode().Perm(), "only the user running streamgate may connect")
	})

	t.Run("the main filter and the usage report work on it", func(t *testing.T) {
		beforeOut := metric(t, g.env, `streamgate_tokens_reconciled_total{direction="output"}`)
		beforeMsgs := envoyStat(t, g.env, "ext_proc.stream_msgs_sent")
		b, _ := json.Marshal(map[string]any{"model": "model-a", "stream": true, "stream_options": map[string]bool{"include_usage": true},
			"messages": []map[string]string{{"role": "user", "content": "over the socket"}}})
		resp, err := postTo(t.Context(), g.env, b, map[string]string{"x-api-key": grpcKeyAcme, "x-fakellm-tokens": "5"})
		require.NoError(t, err)
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, 200, resp.StatusCode, string(got))
		u := lastUsage(t, string(got))
		waitMetric(t, g.env, "streamgate_reservations_outstanding", 0)
		assert.InDelta(t, u.CompletionTokens, metric(t, g.env, `streamgate_tokens_reconciled_total{direction="output"}`)-beforeOut, 0)
		assert.InDelta(t, 2, envoyStat(t, g.env, "ext_proc.stream_msgs_sent")-beforeMsgs, 0, "the usage report, not ext_proc, read the stream")
	})

	t.Run("the gRPC access log service works on it", func(t *testing.T) {
		ctx := call(t.Context(), "resnet", grpcKeyAcme)
		_, err := g.client.ModelMetadata(ctx, &inferencepb.ModelMetadataRequest{Name: "resnet"})
		require.NoError(t, err)
		assert.Eventually(t, func() bool {
			body := get(t, g.metrics+"/metrics")
			return metricValue(body, `streamgate_grpc_messages_total{backend="kserve",direction="request",model="resnet"}`) >= 1
		}, 10*time.Second, 100*time.Millisecond, "an access log entry arrived for the call")
	})

	t.Run("the TCP default is not opened", func(t *testing.T) {
		assert.Contains(t, g.logs.String(), `"msg":"ext_proc listening","address":"unix:`)
		assert.NotContains(t, g.logs.String(), `"address":"`+config.DefaultExtProcListen+`"`)
	})
}

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/examples/fakekserve"
	"github.com/streamgate/streamgate/examples/fakekserve/inferencepb"
	"github.com/streamgate/streamgate/extproc/auth"
)

const (
	grpcKeyAcme    = "sk-e2e-grpc-acme-7c3e9a1b5d"
	grpcKeyGuest   = "sk-e2e-grpc-guest-2b4d6f8a0c"
	grpcUpstream   = "kserve-upstream-secret-1a3c5e7b9d"
	inferServiceMD = "/inference.GRPCInferenceService/"
)

// grpcConfig routes three gRPC models to a fake KServe server, one to a
// port where nothing listens and one to a server the test kills; model-a
// stays an OpenAI model. @KSERVE@, @DEAD@ and @RESET@ are replaced by addresses.
const grpcConfig = listeners + `backends:
  - name: kserve
    protocol: kserve-v2-grpc
    endpoints: [@KSERVE@]
    credential: {header: authorization, env: SG_E2E_KSERVE}
  - name: kserve-dead
    protocol: kserve-v2-grpc
    endpoints: [@DEAD@]
  - name: kserve-reset
    protocol: kserve-v2-grpc
    endpoints: [@RESET@]
  - name: backend-a
    protocol: openai
    endpoints: [{{.BackendA}}]
models:
  - {name: resnet, backend: kserve}
  - {name: speech, backend: kserve}
  - {name: offline, backend: kserve-dead}
  - {name: flaky, backend: kserve-reset}
  - {name: model-a, backend: backend-a}
auth:
  tenant_header: x-tenant
  tenants:
    - name: acme
      models: ["*"]
      api_keys: [{hash: "@ACME@"}]
    - name: guest
      models: [resnet]
      api_keys: [{hash: "@GUEST@"}]
`

// grpcGateway is a gateway in front of fake KServe servers, with a gRPC
// client connection to its listener.
type grpcGateway struct {
	*env
	kserve, reset *fakekserve.Server
	resetServer   *grpc.Server
	conn          *grpc.ClientConn
	client        inferencepb.GRPCInferenceServiceClient
}

func startKServe(t *testing.T, name string, models ...string) (*fakekserve.Server, *grpc.Server, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gs := grpc.NewServer()
	s := fakekserve.New(fakekserve.Options{Name: name, Models: models})
	s.Register(gs)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return s, gs, lis.Addr().String()
}

func startGRPCGateway(t *testing.T, gatewayExtra ...string) *grpcGateway {
	t.Helper()
	return startGRPCGatewayWith(t, "", gatewayExtra...)
}

// startGRPCGatewayWith adds top-level config sections (e.g. limits) to the
// gRPC gateway's config.
func startGRPCGatewayWith(t *testing.T, sections string, gatewayExtra ...string) *grpcGateway {
	t.Helper()
	return startGRPCGatewayFrom(t, grpcConfig+sections, gatewayExtra...)
}

// startGRPCGatewayFrom starts the gRPC gateway from base, a variant of
// grpcConfig with the same placeholders.
func startGRPCGatewayFrom(t *testing.T, base string, gatewayExtra ...string) *grpcGateway {
	t.Helper()
	t.Setenv("SG_E2E_KSERVE", grpcUpstream)
	g := &grpcGateway{}
	var addr, resetAddr string
	g.kserve, _, addr = startKServe(t, "kserve", "resnet", "speech")
	g.reset, g.resetServer, resetAddr = startKServe(t, "kserve-reset", "flaky")
	dead, err := freePorts(1)
	require.NoError(t, err)
	cfg := strings.NewReplacer("@KSERVE@", addr, "@DEAD@", dead[0], "@RESET@", resetAddr,
		"@ACME@", auth.HashKey(grpcKeyAcme), "@GUEST@", auth.HashKey(grpcKeyGuest),
		"  listen: {{.Gateway}}\n", "  listen: {{.Gateway}}\n"+strings.Join(gatewayExtra, "")).Replace(base)
	g.env = startGateway(t, cfg)
	g.conn, err = grpc.NewClient(strings.TrimPrefix(g.gateway, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { g.conn.Close() })
	g.client = inferencepb.NewGRPCInferenceServiceClient(g.conn)
	return g
}

// call returns a context carrying the model metadata and a credential.
func call(ctx context.Context, model, key string) context.Context {
	kv := []string{}
	if model != "" {
		kv = append(kv, contract.ModelHeader, model)
	}
	if key != "" {
		kv = append(kv, "x-api-key", key)
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

func inferRequest(model, id string, params map[string]int64) *inferencepb.ModelInferRequest {
	r := &inferencepb.ModelInferRequest{ModelName: model, Id: id, RawInputContents: [][]byte{[]byte("in-" + id)},
		Parameters: map[string]*inferencepb.InferParameter{}}
	for k, v := range params {
		r.Parameters[k] = &inferencepb.InferParameter{ParameterChoice: &inferencepb.InferParameter_Int64Param{Int64Param: v}}
	}
	return r
}

// exchange sends n requests on one bidi stream while reading, and checks
// that every request gets its responses, in order.
func exchange(ctx context.Context, c inferencepb.GRPCInferenceServiceClient, model, key string, n, per int) error {
	st, err := c.ModelStreamInfer(call(ctx, model, key))
	if err != nil {
		return err
	}
	sendErr := make(chan error, 1)
	go func() {
		for i := range n {
			if err := st.Send(inferRequest(model, fmt.Sprint(i), map[string]int64{fakekserve.ParamResponses: int64(per)})); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- st.CloseSend()
	}()
	for i := range n {
		for j := range per {
			r, err := st.Recv()
			if err != nil {
				return fmt.Errorf("response %d/%d: %w", i, j, err)
			}
			ir := r.GetInferResponse()
			if ir.GetId() != fmt.Sprint(i) || ir.GetParameters()[fakekserve.ParamIndex].GetInt64Param() != int64(j) ||
				string(ir.GetRawOutputContents()[0]) != "in-"+fmt.Sprint(i) || ir.GetModelName() != model {
				return fmt.Errorf("response %d/%d out of order or wrong: id %q index %d", i, j, ir.GetId(), ir.GetParameters()[fakekserve.ParamIndex].GetInt64Param())
			}
		}
	}
	if _, err := st.Recv(); err != io.EOF {
		return fmt.Errorf("want end of stream, got %v", err)
	}
	return <-sendErr
}

func TestGRPC(t *testing.T) {
	g := startGRPCGateway(t)

	t.Run("unary calls pass through with header hygiene", func(t *testing.T) {
		ctx := call(t.Context(), "resnet", grpcKeyAcme)
		live, err := g.client.ServerLive(ctx, &inferencepb.ServerLiveRequest{})
		require.NoError(t, err)
		assert.True(t, live.GetLive())
		ready, err := g.client.ModelReady(ctx, &inferencepb.ModelReadyRequest{Name: "resnet"})
		require.NoError(t, err)
		assert.True(t, ready.GetReady())
		meta, err := g.client.ModelMetadata(ctx, &inferencepb.ModelMetadataRequest{Name: "resnet"})
		require.NoError(t, err)
		assert.Equal(t, "resnet", meta.GetName())
		var hdr metadata.MD
		resp, err := g.client.ModelInfer(ctx, inferRequest("resnet", "u1", nil), grpc.Header(&hdr))
		require.NoError(t, err)
		assert.Equal(t, "in-u1", string(resp.GetRawOutputContents()[0]))
		assert.Equal(t, []string{"default"}, hdr.Get("x-streamgate-model-version"))
		md := g.kserve.Stats().LastMetadata
		assert.Equal(t, []string{"acme"}, md.Get("x-tenant"), "backend sees the verified tenant")
		assert.Equal(t, []string{"Bearer " + grpcUpstream}, md.Get("authorization"), "backend sees its own credential")
		assert.Empty(t, md.Get("x-api-key"), "client credential stripped")
		assert.Equal(t, []string{"resnet"}, md.Get(contract.ModelHeader), "the verified public model name")
	})

	t.Run("bidi stream of 1000 requests in order", func(t *testing.T) {
		before := g.kserve.Stats()
		require.NoError(t, exchange(t.Context(), g.client, "resnet", grpcKeyAcme, 1000, 3))
		after := g.kserve.Stats()
		assert.Equal(t, int64(1000), after.Received-before.Received)
		assert.Equal(t, int64(3000), after.Sent-before.Sent)
	})

	t.Run("50 concurrent bidi streams", func(t *testing.T) {
		before := g.kserve.Stats()
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				model := []string{"resnet", "speech"}[i%2]
				errs <- exchange(t.Context(), g.client, model, grpcKeyAcme, 40, 2)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			assert.NoError(t, err)
		}
		after := g.kserve.Stats()
		assert.Equal(t, int64(50), after.Streams-before.Streams)
		assert.Equal(t, int64(50*40), after.Received-before.Received)
	})

	t.Run("denials are trailers-only gRPC statuses", func(t *testing.T) {
		before := g.kserve.Stats()
		for name, tc := range map[string]struct {
			model, key string
			code       codes.Code
			msg        string
		}{
			"no credential":     {model: "resnet", code: codes.Unauthenticated},
			"wrong key":         {model: "resnet", key: "sk-e2e-wrong-0000000000", code: codes.Unauthenticated},
			"model not allowed": {model: "speech", key: grpcKeyGuest, code: codes.PermissionDenied, msg: "speech"},
			"unknown model":     {model: "nope", key: grpcKeyAcme, code: codes.NotFound, msg: "nope"},
			"HTTP model":        {model: "model-a", key: grpcKeyAcme, code: codes.NotFound, msg: "not served over gRPC"},
			"no model":          {key: grpcKeyAcme, code: codes.InvalidArgument, msg: contract.ModelHeader},
			"backend down":      {model: "offline", key: grpcKeyAcme, code: codes.Unavailable},
		} {
			t.Run(name, func(t *testing.T) {
				st, err := g.client.ModelStreamInfer(call(t.Context(), tc.model, tc.key))
				require.NoError(t, err)
				_, err = st.Recv()
				assert.Equal(t, tc.code, grpcstatus.Code(err), "%v", err)
				assert.Contains(t, grpcstatus.Convert(err).Message(), tc.msg)
				assert.NotContains(t, err.Error(), grpcKeyAcme)
				t.Logf("%s: %v", name, err)
				_, err = g.client.ModelInfer(call(t.Context(), tc.model, tc.key), inferRequest(tc.model, "d", nil))
				assert.Equal(t, tc.code, grpcstatus.Code(err), "unary: %v", err)
			})
		}
		assert.Equal(t, before.Streams, g.kserve.Stats().Streams, "no denied stream reached the backend")
		assert.Equal(t, before.Unary, g.kserve.Stats().Unary)
	})

	t.Run("client cancel reaches the backend within 1s", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		st, err := g.client.ModelStreamInfer(call(ctx, "resnet", grpcKeyAcme))
		require.NoError(t, err)
		require.NoError(t, st.Send(inferRequest("resnet", "c", nil)))
		_, err = st.Recv()
		require.NoError(t, err)
		epStats := strings.ReplaceAll(get(t, g.admin+"/stats?filter=ext_proc.streams_(started|closed)"), ": ", " ")
		require.Positive(t, metricValue(epStats, "http.streamgate.ext_proc.streams_started"))
		assert.Equal(t, metricValue(epStats, "http.streamgate.ext_proc.streams_started"), metricValue(epStats, "http.streamgate.ext_proc.streams_closed"),
			"a routed gRPC call holds no ext_proc stream while it runs")
		for len(g.kserve.Cancelled()) > 0 {
			<-g.kserve.Cancelled()
		}
		start := time.Now()
		cancel()
		select {
		case <-g.kserve.Cancelled():
			t.Logf("backend saw the client cancel after %v", time.Since(start))
		case <-time.After(time.Second):
			t.Fatal("backend did not see the client cancel within 1s")
		}
	})

	t.Run("backend abort reaches the client", func(t *testing.T) {
		st, err := g.client.ModelStreamInfer(call(t.Context(), "resnet", grpcKeyAcme))
		require.NoError(t, err)
		r := inferRequest("resnet", "a", map[string]int64{fakekserve.ParamResponses: 1})
		r.Parameters[fakekserve.ParamFail] = &inferencepb.InferParameter{ParameterChoice: &inferencepb.InferParameter_StringParam{StringParam: "aborted"}}
		require.NoError(t, st.Send(r))
		_, err = st.Recv()
		require.NoError(t, err)
		_, err = st.Recv()
		assert.Equal(t, codes.Aborted, grpcstatus.Code(err), "%v", err)
		assert.Contains(t, grpcstatus.Convert(err).Message(), "fake model aborted")
	})

	t.Run("health of the ext_proc and xDS servers", func(t *testing.T) {
		cfg, err := config.Load(g.configPath)
		require.NoError(t, err)
		for _, addr := range []string{cfg.ExtProc.Listen, cfg.XDS.Listen} {
			cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			require.NoError(t, err)
			resp, err := healthpb.NewHealthClient(cc).Check(t.Context(), &healthpb.HealthCheckRequest{})
			cc.Close()
			require.NoError(t, err, addr)
			assert.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus(), addr)
		}
	})

	// Last: it kills the reset backend.
	t.Run("backend reset reaches the client", func(t *testing.T) {
		st, err := g.client.ModelStreamInfer(call(t.Context(), "flaky", grpcKeyAcme))
		require.NoError(t, err)
		require.NoError(t, st.Send(inferRequest("flaky", "r", map[string]int64{fakekserve.ParamResponses: 1})))
		_, err = st.Recv()
		require.NoError(t, err)
		start := time.Now()
		g.resetServer.Stop() // closes the backend's connections mid-stream
		_, err = st.Recv()
		require.Error(t, err)
		assert.NotEqual(t, codes.OK, grpcstatus.Code(err))
		assert.Less(t, time.Since(start), 5*time.Second)
		t.Logf("client saw the backend reset as %v after %v", grpcstatus.Code(err), time.Since(start))
	})

	t.Run("metrics count streams per model", func(t *testing.T) {
		body := get(t, g.metrics+"/metrics")
		assert.Contains(t, body, `streamgate_grpc_streams_total{backend="kserve",code="routed",method="ModelStreamInfer",model="resnet"}`)
		assert.Contains(t, body, `streamgate_grpc_streams_total{backend="",code="Unauthenticated",method="ModelStreamInfer",model="other"}`)
		// Messages and bytes per model arrive by Envoy's access log when
		// each call ends, flushed every second.
		var req, resp float64
		require.Eventually(t, func() bool {
			body := get(t, g.metrics+"/metrics")
			req = metricValue(body, `streamgate_grpc_messages_total{backend="kserve",direction="request",model="resnet"}`)
			resp = metricValue(body, `streamgate_grpc_messages_total{backend="kserve",direction="response",model="resnet"}`)
			return req >= 1000+25*40 && resp >= 3000+25*40*2
		}, 10*time.Second, 100*time.Millisecond, "messages per model: %v requests, %v responses", req, resp)
		body = get(t, g.metrics+"/metrics")
		assert.Greater(t, metricValue(body, `streamgate_grpc_bytes_total{backend="kserve",direction="response",model="resnet"}`), 3000.0*5)
		assert.Positive(t, metricValue(body, `streamgate_grpc_messages_total{backend="kserve",direction="request",model="speech"}`))
		t.Logf("resnet: %v request and %v response messages", req, resp)
		stats := get(t, g.admin+"/stats?filter=grpc.inference")
		assert.Contains(t, stats, "cluster.kserve.grpc.inference.GRPCInferenceService.ModelStreamInfer.request_message_count")
		t.Logf("Envoy gRPC message stats:\n%s", stats)
	})
}

// metricValue returns the value of the Prometheus sample named exactly
// series in a text exposition, or -1.
func metricValue(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	return -1
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

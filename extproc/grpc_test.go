package extproc

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/extproc/ratelimit"
)

const (
	grpcKey      = "sk-unit-grpc-0123456789"
	grpcGuestKey = "sk-unit-grpc-guest-0123456789"
	streamPath   = "/inference.GRPCInferenceService/ModelStreamInfer"
)

func newGRPCFixture(t *testing.T) (*Routes, *auth.Authenticator, *bytes.Buffer) {
	t.Helper()
	t.Setenv("SG_UNIT_TRITON", "triton-secret-0123456789")
	cfg, err := config.Parse("t.yaml", []byte(fmt.Sprintf(`backends:
  - name: triton
    protocol: kserve-v2-grpc
    endpoints: [127.0.0.1:1]
    credential: {header: x-api-key, env: SG_UNIT_TRITON}
    grpc_methods: [RepositoryIndex]
  - name: triton2
    protocol: kserve-v2-grpc
    endpoints: [127.0.0.1:3]
  - name: vllm
    protocol: openai
    endpoints: [127.0.0.1:2]
models:
  - {name: resnet, backend: triton}
  - {name: speech, backend: triton}
  - {name: chat, backend: vllm}
  - {name: bert, backend: triton2}
auth:
  tenant_header: x-tenant
  tenants:
    - name: acme
      models: ["*"]
      api_keys: [{hash: %s}]
    - name: guest
      models: [resnet]
      endpoints: [/inference.GRPCInferenceService/ModelInfer]
      api_keys: [{hash: %s}]
`, auth.HashKey(grpcKey), auth.HashKey(grpcGuestKey))))
	require.NoError(t, err)
	logs := &bytes.Buffer{}
	a, err := auth.New(t.Context(), cfg, auth.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	return NewRoutes(cfg, 1), a, logs
}

func TestGRPCRequestHeaders(t *testing.T) {
	routes, a, _ := newGRPCFixture(t)
	for name, tc := range map[string]struct {
		path string
		hdrs map[string]string
		code codes.Code // OK: routed
	}{
		"routed stream":        {path: streamPath, hdrs: map[string]string{"x-api-key": grpcKey, contract.ModelHeader: "resnet"}},
		"routed bearer":        {path: "/inference.GRPCInferenceService/ModelInfer", hdrs: map[string]string{"authorization": "Bearer " + grpcKey, contract.ModelHeader: "speech"}},
		"grpc+proto":           {path: streamPath, hdrs: map[string]string{"x-api-key": grpcKey, contract.ModelHeader: "resnet", "content-type": "application/grpc+proto"}},
		"no credential":        {path: streamPath, hdrs: map[string]string{contract.ModelHeader: "resnet"}, code: codes.Unauthenticated},
		"wrong key":            {path: streamPath, hdrs: map[string]string{"x-api-key": "sk-nope-000000000000", contract.ModelHeader: "resnet"}, code: codes.Unauthenticated},
		"model denied":         {path: "/inference.GRPCInferenceService/ModelInfer", hdrs: map[string]string{"x-api-key": grpcGuestKey, contract.ModelHeader: "speech"}, code: codes.PermissionDenied},
		"method denied":        {path: streamPath, hdrs: map[string]string{"x-api-key": grpcGuestKey, contract.ModelHeader: "resnet"}, code: codes.PermissionDenied},
		"unknown model":        {path: streamPath, hdrs: map[string]string{"x-api-key": grpcKey, contract.ModelHeader: "nope"}, code: codes.NotFound},
		"http model over grpc": {path: streamPath, hdrs: map[string]string{"x-api-key": grpcKey, contract.ModelHeader: "chat"}, code: codes.NotFound},
		"no model metadata":    {path: streamPath, hdrs: map[string]string{"x-api-key": grpcKey}, code: codes.InvalidArgument},
		"other service":        {path: "/grpc.health.v1.Health/Check", hdrs: map[string]string{"x-api-key": grpcKey, contract.ModelHeader: "resnet"}, code: codes.Unimplemented},
		"bad pin":              {path: streamPath, hdrs: map[string]string{"x-api-key": grpcKey, contract.ModelHeader: "resnet", contract.VersionHeader: "v9"}, code: codes.PermissionDenied},
		// Issue 23, finding 6: only inference and metadata methods by default.
		"made-up method":         {path: "/inference.GRPCInferenceService/ModelInferX", hdrs: map[string]string{"x-api-key": grpcKey, contract.ModelHeader: "resnet"}, code: codes.Unimplemented},
		"nested path":            {path: "/inference.GRPCInferenceService/ModelInfer/x", hdrs: map[string]string{"x-api-key": grpcKey, contract.ModelHeader: "resnet"}, code: codes.Unimplemented},
		"repository load":        {path: "/inference.GRPCInferenceService/RepositoryModelLoad", hdrs: map[string]string{"x-api-key": grpcKey, contract.ModelHeader: "resnet"}, code: codes.PermissionDenied},
		"shared memory":          {path: "/inference.GRPCInferenceService/SystemSharedMemoryRegister", hdrs: map[string]string{"x-api-key": grpcKey, contract.ModelHeader: "resnet"}, code: codes.PermissionDenied},
		"enabled by the backend": {path: "/inference.GRPCInferenceService/RepositoryIndex", hdrs: map[string]string{"x-api-key": grpcKey, contract.ModelHeader: "resnet"}},
		"not enabled on another": {path: "/inference.GRPCInferenceService/RepositoryIndex", hdrs: map[string]string{"x-api-key": grpcKey, contract.ModelHeader: "bert"}, code: codes.PermissionDenied},
		"metadata by default":    {path: "/inference.GRPCInferenceService/ModelMetadata", hdrs: map[string]string{"x-api-key": grpcKey, contract.ModelHeader: "bert"}},
	} {
		t.Run(name, func(t *testing.T) {
			p := newProcessor(routes, 1<<20, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			p.ctx, p.auth = t.Context(), a
			if _, ok := tc.hdrs["content-type"]; !ok {
				tc.hdrs["content-type"] = "application/grpc"
			}
			resp := p.handle(headersMsg("POST", tc.path, tc.hdrs, false))
			if tc.code != codes.OK {
				ir := resp.GetImmediateResponse()
				require.NotNil(t, ir, "want a trailers-only denial")
				assert.EqualValues(t, 200, ir.GetStatus().GetCode())
				assert.Equal(t, uint32(tc.code), ir.GetGrpcStatus().GetStatus())
				h := setHeaders(ir.GetHeaders())
				assert.Equal(t, "application/grpc", h["content-type"])
				assert.Equal(t, fmt.Sprint(int(tc.code)), h["grpc-status"])
				assert.NotEmpty(t, h["grpc-message"])
				assert.NotContains(t, h["grpc-message"], grpcKey)
				assert.Empty(t, ir.GetBody())
				return
			}
			hr := resp.GetRequestHeaders()
			require.NotNil(t, hr, "want the call routed, got %v", resp)
			assert.True(t, hr.GetResponse().GetClearRouteCache())
			mode := resp.GetModeOverride()
			require.NotNil(t, mode)
			assert.Equal(t, extprocv3.ProcessingMode_NONE, mode.GetRequestBodyMode(), "a bidi stream's body must not be buffered")
			assert.Equal(t, extprocv3.ProcessingMode_NONE, mode.GetResponseBodyMode())
			m := hr.GetResponse().GetHeaderMutation()
			set := setHeaders(m)
			assert.Equal(t, "acme", set["x-tenant"])
			assert.Contains(t, []string{"triton", "triton2"}, set[contract.BackendHeader])
			if set[contract.BackendHeader] == "triton" {
				assert.Equal(t, "triton-secret-0123456789", set[auth.HeaderAPIKey], "the backend's credential replaces the client's")
				assert.NotContains(t, m.GetRemoveHeaders(), auth.HeaderAPIKey)
			}
			assert.Subset(t, m.GetRemoveHeaders(), []string{auth.HeaderAuthorization})
			assert.Equal(t, tc.hdrs[contract.ModelHeader], set[contract.ModelHeader], "the verified model name is set for the access log")
			assert.NotContains(t, m.GetRemoveHeaders(), contract.ModelHeader)
		})
	}
}

// TestHTTPRequestForGRPCModel: an OpenAI request naming a gRPC-only model
// is refused with the OpenAI error shape, not sent to a gRPC backend.
func TestHTTPRequestForGRPCModel(t *testing.T) {
	routes, _, _ := newGRPCFixture(t)
	p := newProcessor(routes, 1<<20, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	require.NotNil(t, p.handle(headersMsg("POST", "/v1/chat/completions", map[string]string{"content-type": "application/json"}, false)).GetRequestHeaders())
	ir := p.handle(bodyMsg(`{"model":"resnet","messages":[]}`)).GetImmediateResponse()
	require.NotNil(t, ir)
	assert.EqualValues(t, 404, ir.GetStatus().GetCode())
	assert.Contains(t, string(ir.GetBody()), "model_not_found")
}

func TestGRPCResourceExhaustedCarriesRetryInfo(t *testing.T) {
	p := newProcessor(nil, 1<<20, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	p.grpc = true
	limited := &clientError{kind: &ratelimit.DeniedError{Kind: ratelimit.ErrRateLimited, RetryAfter: 1500 * time.Millisecond}, msg: "Rate limit reached."}
	ir := p.fail(limited).GetImmediateResponse()
	require.NotNil(t, ir)
	assert.Equal(t, uint32(codes.ResourceExhausted), ir.GetGrpcStatus().GetStatus())
	raw := setHeaders(ir.GetHeaders())["grpc-status-details-bin"]
	b, err := base64.RawStdEncoding.DecodeString(raw)
	require.NoError(t, err)
	var st spb.Status
	require.NoError(t, proto.Unmarshal(b, &st))
	assert.Equal(t, int32(codes.ResourceExhausted), st.GetCode())
	require.Len(t, st.GetDetails(), 1)
	var ri errdetails.RetryInfo
	require.NoError(t, st.GetDetails()[0].UnmarshalTo(&ri))
	assert.Equal(t, 1500*time.Millisecond, ri.GetRetryDelay().AsDuration())
}

func TestEncodeGRPCMessage(t *testing.T) {
	assert.Equal(t, "plain text: ok", encodeGRPCMessage("plain text: ok"))
	assert.Equal(t, "100%25 caf%C3%A9%0A", encodeGRPCMessage("100% café\n"))
}

func TestGRPCStreamsMetric(t *testing.T) {
	routes, a, _ := newGRPCFixture(t)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	for _, key := range []string{grpcKey, grpcKey, "sk-nope-000000000000"} {
		p := newProcessor(routes, 1<<20, slog.New(slog.NewTextHandler(io.Discard, nil)), m)
		p.ctx, p.auth = t.Context(), a
		p.handle(headersMsg("POST", streamPath, map[string]string{"content-type": "application/grpc", "x-api-key": key, contract.ModelHeader: "resnet"}, false))
		p.finish()
	}
	assert.InDelta(t, 2, testutil.ToFloat64(m.grpc.WithLabelValues("resnet", "triton", "ModelStreamInfer", "routed")), 0)
	assert.InDelta(t, 1, testutil.ToFloat64(m.grpc.WithLabelValues("other", "", "ModelStreamInfer", "Unauthenticated")), 0)
}

// TestGRPCMethodLabelIsBounded (issue 23, finding 5): calls to made-up or
// long paths, refused before authentication, add no metric series of their
// own: the method label only holds known method names, else "other".
func TestGRPCMethodLabelIsBounded(t *testing.T) {
	routes, a, _ := newGRPCFixture(t)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	for i := range 200 {
		p := newProcessor(routes, 1<<20, slog.New(slog.NewTextHandler(io.Discard, nil)), m)
		p.ctx, p.auth = t.Context(), a
		path := fmt.Sprintf("/inference.GRPCInferenceService/%d%s", i, strings.Repeat("x", 1000))
		if i%2 == 1 {
			path = fmt.Sprintf("/pkg%d.Svc/M", i)
		}
		p.handle(headersMsg("POST", path, map[string]string{"content-type": "application/grpc", contract.ModelHeader: "resnet"}, false))
		p.finish()
	}
	assert.Equal(t, 1, testutil.CollectAndCount(m.grpc), "one series for every unknown path")
	assert.InDelta(t, 200, testutil.ToFloat64(m.grpc.WithLabelValues("other", "", "other", "Unauthenticated")), 0)
}

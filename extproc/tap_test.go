package extproc

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/extproctest"
)

// tapServer runs a Server with limits on a TCP port and returns a client.
func tapServer(t *testing.T, yaml ...string) (*Server, extprocsvcv3.ExternalProcessorClient, *prometheus.Registry) {
	t.Helper()
	y := limitedYAML
	if len(yaml) > 0 {
		y = yaml[0]
	}
	cfg, err := config.Parse("t.yaml", []byte(y))
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	srv := NewServer(cfg, NewRoutes(cfg, 1), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	lim, err := NewLimits(cfg, nil, reg)
	require.NoError(t, err)
	srv.SetLimits(lim)
	return srv, extproctest.Serve(t, srv), reg
}

// answeredBody opens a main ext_proc stream for a chat request with body
// and returns it with the body answer.
func answeredBody(t *testing.T, client extprocsvcv3.ExternalProcessorClient, body string) (extprocsvcv3.ExternalProcessor_ProcessClient, *extprocsvcv3.ProcessingResponse) {
	t.Helper()
	main, err := client.Process(t.Context())
	require.NoError(t, err)
	require.NoError(t, main.Send(reqHeaders("POST", "/v1/chat/completions", false)))
	_, err = main.Recv()
	require.NoError(t, err)
	require.NoError(t, main.Send(bodyMsg(body)))
	br, err := main.Recv()
	require.NoError(t, err)
	return main, br
}

// tapMsg marks m as a tap stream message carrying key, as Envoy sends it.
func tapMsg(m *extprocsvcv3.ProcessingRequest, key string) *extprocsvcv3.ProcessingRequest {
	m.ObservabilityMode = true
	m.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{contract.TapNamespace: {Fields: map[string]*structpb.Value{
		contract.TapMetadataKey: structpb.NewStringValue(key),
	}}}}
	return m
}

// TestTapSettlesHandedOverRequest: a limited stream request whose client
// asked for usage is handed over at its body answer (the main stream ends
// there); its tap stream, fed without answers, reads the usage and settles
// the reservation at the response's end.
func TestTapSettlesHandedOverRequest(t *testing.T) {
	srv, client, reg := tapServer(t)
	main, br := answeredBody(t, client, `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`)
	key := br.GetDynamicMetadata().GetFields()[contract.TapNamespace].GetStructValue().GetFields()[contract.TapMetadataKey].GetStringValue()
	require.NotEmpty(t, key, "the request is handed over to its tap")
	_, err := main.Recv()
	assert.ErrorIs(t, err, io.EOF, "the main stream ends with the body answer")
	assert.InDelta(t, 1, gauge(t, reg, "streamgate_reservations_outstanding"), 0)
	assert.Eventually(t, func() bool { return srv.Active() == 1 }, 5*time.Second, 10*time.Millisecond,
		"a parked request still counts as active (the drain waits for it)")

	tap, err := client.Process(t.Context())
	require.NoError(t, err)
	require.NoError(t, tap.Send(tapMsg(reqHeaders("POST", "/v1/chat/completions", false), key)))
	i := strings.Index(usageStream, `data: {"model":"private","choices":[]`)
	require.NoError(t, tap.Send(tapMsg(withStatus(respBody(usageStream[:i], false), 200), key)))
	require.NoError(t, tap.Send(tapMsg(respBody(usageStream[i:], true), key)))
	_, err = tap.Recv()
	assert.ErrorIs(t, err, io.EOF, "the tap answers nothing and ends after the response's end")
	assert.InDelta(t, 0, gauge(t, reg, "streamgate_reservations_outstanding"), 0)
	assert.Eventually(t, func() bool { return srv.Active() == 0 }, 5*time.Second, 10*time.Millisecond)

	// A tap stream for a request not handed over ends at once.
	other, err := client.Process(t.Context())
	require.NoError(t, err)
	require.NoError(t, other.Send(tapMsg(reqHeaders("POST", "/v1/chat/completions", false), key)))
	_, err = other.Recv()
	assert.ErrorIs(t, err, io.EOF)
}

// TestTapNeverComingSettlesWithEstimate: a handed-over request whose tap
// stream never opens (the client left at once, or the usage filter is not
// installed) is settled after the wait instead of holding its reservation.
func TestTapNeverComingSettlesWithEstimate(t *testing.T) {
	srv, client, reg := tapServer(t)
	srv.taps.wait = 50 * time.Millisecond
	_, br := answeredBody(t, client, `{"model":"m","stream":false,"messages":[]}`)
	require.NotEmpty(t, br.GetDynamicMetadata().GetFields()[contract.TapNamespace].GetStructValue().GetFields()[contract.TapMetadataKey].GetStringValue())
	assert.InDelta(t, 1, gauge(t, reg, "streamgate_reservations_outstanding"), 0)
	assert.Eventually(t, func() bool { return gauge(t, reg, "streamgate_reservations_outstanding") == 0 }, 5*time.Second, 10*time.Millisecond)
	assert.Eventually(t, func() bool { return srv.Active() == 0 }, 5*time.Second, 10*time.Millisecond)
}

// TestTapNotHandedOverWhenUsageIsStripped: a stream whose client did not
// ask for usage gets a usage chunk the gateway must remove, so its
// response stays on the main stream.
func TestTapNotHandedOverWhenUsageIsStripped(t *testing.T) {
	_, client, _ := tapServer(t)
	main, br := answeredBody(t, client, `{"model":"m","stream":true,"messages":[]}`)
	assert.NotContains(t, br.GetDynamicMetadata().GetFields(), contract.TapNamespace)
	require.NoError(t, main.Send(withStatus(respBody(usageStream, true), 200)))
	last, err := main.Recv()
	require.NoError(t, err)
	out := string(last.GetResponseBody().GetResponse().GetBodyMutation().GetBody())
	assert.NotContains(t, out, `"usage"`, "the main stream strips the usage chunk")
	assert.Contains(t, out, "data: [DONE]")
	require.NoError(t, main.CloseSend())
}

// gauge reads a gauge's value from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestTapOffWithInlineReading: with limits.read_usage inline, a response
// that only needs reading stays on the main stream.
func TestTapOffWithInlineReading(t *testing.T) {
	_, client, _ := tapServer(t, limitedYAML+"  read_usage: inline\n")
	main, br := answeredBody(t, client, `{"model":"m","stream":false,"messages":[]}`)
	assert.NotContains(t, br.GetDynamicMetadata().GetFields(), contract.TapNamespace)
	require.NoError(t, main.Send(withStatus(respBody(`{"usage":{"prompt_tokens":3,"completion_tokens":4}}`, true), 200)))
	_, err := main.Recv()
	require.NoError(t, err, "the main stream reads the response")
	require.NoError(t, main.CloseSend())
}

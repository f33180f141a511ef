package extproc

import (
	"io"
	"log/slog"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	alsdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	aiv3 "github.com/envoyproxy/go-control-plane/envoy/data/ai/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/extproctest"
)

// reportServer runs a Server with limits on a TCP port (so Envoy reads
// usage) and returns an ext_proc client and an access log client.
func reportServer(t *testing.T, yaml ...string) (*Server, extprocsvcv3.ExternalProcessorClient, alsv3.AccessLogServiceClient, *prometheus.Registry) {
	t.Helper()
	y := limitedYAML + "extproc:\n  listen: 127.0.0.1:50051\n"
	if len(yaml) > 0 {
		y = yaml[0]
	}
	cfg, err := config.Parse("t.yaml", []byte(y))
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	srv := NewServer(cfg, NewRoutes(cfg, 1), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	srv.SetServesListener(cfg)
	lim, err := NewLimits(cfg, nil, reg)
	require.NoError(t, err)
	srv.SetLimits(lim)
	client := extproctest.Serve(t, srv)
	return srv, client, alsClient(t, srv), reg
}

// alsClient serves srv once more and returns an access log client to it.
func alsClient(t *testing.T, srv *Server) alsv3.AccessLogServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(extproctest.Listen(t, srv), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return alsv3.NewAccessLogServiceClient(conn)
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

// reportKeyOf is the report key a body answer gave Envoy ("" if none).
func reportKeyOf(br *extprocsvcv3.ProcessingResponse) string {
	return br.GetDynamicMetadata().GetFields()[contract.ReportNamespace].GetStructValue().GetFields()[contract.ReportKey].GetStringValue()
}

// usageReport is the entry Envoy's usage report log writes for key: status,
// the bytes the backend sent, and the usage its AI protocol manager read
// (nil: none).
func usageReport(t testing.TB, key string, status uint32, upstreamBytes uint64, usage *aiv3.TokenUsage) *alsdatav3.HTTPAccessLogEntry {
	t.Helper()
	md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{contract.ReportNamespace: {Fields: map[string]*structpb.Value{
		contract.ReportKey: structpb.NewStringValue(key),
	}}}}
	if usage != nil {
		a, err := anypb.New(usage)
		require.NoError(t, err)
		md.TypedFilterMetadata = map[string]*anypb.Any{contract.EnvoyUsageNamespace: a}
	}
	return &alsdatav3.HTTPAccessLogEntry{
		CommonProperties: &alsdatav3.AccessLogCommon{
			StartTime:                 timestamppb.Now(),
			Duration:                  durationpb.New(300 * time.Millisecond),
			Metadata:                  md,
			CustomTags:                map[string]string{contract.ReportTTFTTag: "150000"},
			UpstreamWireBytesReceived: upstreamBytes,
		},
		Response: &alsdatav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(status)},
	}
}

// completeUsage is a usage Envoy read whole.
func completeUsage(in, out uint64) *aiv3.TokenUsage {
	return &aiv3.TokenUsage{InputTokens: wrapperspb.UInt64(in), OutputTokens: wrapperspb.UInt64(out), Model: "private",
		ExtractionStatus: aiv3.TokenUsage_COMPLETE}
}

// sendReports sends entries on one usage report log stream, as Envoy does.
func sendReports(t *testing.T, als alsv3.AccessLogServiceClient, entries ...*alsdatav3.HTTPAccessLogEntry) {
	t.Helper()
	s, err := als.StreamAccessLogs(t.Context())
	require.NoError(t, err)
	require.NoError(t, s.Send(&alsv3.StreamAccessLogsMessage{
		Identifier: &alsv3.StreamAccessLogsMessage_Identifier{LogName: contract.UsageReportLog},
		LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: entries}},
	}))
	// The service ends a stream without an answer (Envoy expects none),
	// which a Go client reports as an error once every entry was read.
	_, _ = s.CloseAndRecv()
}

// TestUsageReportSettlesHandedOverRequest: a limited stream request is
// handed over at its body answer (the main stream ends there); Envoy's
// usage report settles the reservation with the usage it read, exactly
// once: a second report under the same key changes nothing.
func TestUsageReportSettlesHandedOverRequest(t *testing.T) {
	srv, client, als, reg := reportServer(t)
	main, br := answeredBody(t, client, `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`)
	key := reportKeyOf(br)
	require.NotEmpty(t, key, "the request is handed over to its report")
	_, err := main.Recv()
	assert.ErrorIs(t, err, io.EOF, "the main stream ends with the body answer")
	assert.InDelta(t, 1, gauge(t, reg, "streamgate_reservations_outstanding"), 0)
	assert.Eventually(t, func() bool { return srv.Active() == 1 }, 5*time.Second, 10*time.Millisecond,
		"a parked request still counts as active (the drain waits for it)")

	sendReports(t, als, usageReport(t, key, 200, 4096, completeUsage(11, 5)))
	waitGauge(t, reg, "streamgate_reservations_outstanding", 0, "the report settles the reservation")
	waitActive(t, srv, 0, "a settled request is no longer active")
	assert.InDelta(t, 11, reconciled(t, reg, "input"), 0, "input charged from the reported usage")
	assert.InDelta(t, 5, reconciled(t, reg, "output"), 0, "output charged from the reported usage")

	sendReports(t, als, usageReport(t, key, 200, 4096, completeUsage(100, 100)))
	assert.InDelta(t, 5, reconciled(t, reg, "output"), 0, "a second report of the same request charges nothing")
}

// TestUsageReportMarksStripping: a stream whose client did not ask for
// usage gets include_usage added and is handed over too, with the mark
// that has the strip filter remove the usage chunk.
func TestUsageReportMarksStripping(t *testing.T) {
	_, client, _, _ := reportServer(t)
	_, br := answeredBody(t, client, `{"model":"m","stream":true,"messages":[]}`)
	require.NotEmpty(t, reportKeyOf(br))
	upstream := string(br.GetRequestBody().GetResponse().GetBodyMutation().GetBody())
	assert.Contains(t, upstream, `"include_usage":true`)
	md := br.GetDynamicMetadata().GetFields()[contract.MetadataNamespace].GetStructValue().GetFields()
	assert.True(t, md[contract.MetaStrip].GetBoolValue(), "the strip filter is told to strip")

	_, asked := answeredBody(t, client, `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}`)
	md = asked.GetDynamicMetadata().GetFields()[contract.MetadataNamespace].GetStructValue().GetFields()
	assert.NotContains(t, md, contract.MetaStrip, "a client that asked keeps its usage chunk")
}

// TestUsageReportNeverComingChargesTheReservation: a handed-over request
// whose report never comes (the reading filters are not installed) is
// settled after the wait instead of holding its reservation, charged its
// reserved output (never less than it may have used).
func TestUsageReportNeverComingChargesTheReservation(t *testing.T) {
	srv, client, _, reg := reportServer(t)
	srv.reports.wait = 50 * time.Millisecond
	_, br := answeredBody(t, client, `{"model":"m","stream":false,"max_tokens":40,"messages":[]}`)
	require.NotEmpty(t, reportKeyOf(br))
	assert.InDelta(t, 1, gauge(t, reg, "streamgate_reservations_outstanding"), 0)
	waitGauge(t, reg, "streamgate_reservations_outstanding", 0, "the wait settles the reservation")
	waitActive(t, srv, 0, "and ends the request")
	assert.InDelta(t, 40, reconciled(t, reg, "output"), 0, "the reserved output is charged")
}

// TestUsageStaysInlineWhereTheListenerIsNotOurs: with read_usage auto, a
// server that does not publish Envoy's listener (streamgate extproc in
// front of a drop-in or Istio Envoy) reads usage itself; read_usage envoy
// hands it over anyway.
func TestUsageStaysInlineWhereTheListenerIsNotOurs(t *testing.T) {
	for name, tc := range map[string]struct {
		readUsage string
		handed    bool
	}{"auto": {"", false}, "envoy": {"  read_usage: envoy\n", true}} {
		t.Run(name, func(t *testing.T) {
			cfg, err := config.Parse("t.yaml", []byte(limitedYAML+tc.readUsage+"extproc:\n  listen: 127.0.0.1:50051\n"))
			require.NoError(t, err)
			srv := NewServer(cfg, NewRoutes(cfg, 1), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			lim, err := NewLimits(cfg, nil, prometheus.NewRegistry())
			require.NoError(t, err)
			srv.SetLimits(lim)
			main, br := answeredBody(t, extproctest.Serve(t, srv), `{"model":"m","stream":false,"messages":[]}`)
			assert.Equal(t, tc.handed, reportKeyOf(br) != "")
			require.NoError(t, main.CloseSend())
		})
	}
}

// TestUsageReportCutStreamChargedAnEstimate: a stream cut before its usage
// (Envoy reports none) is charged what the backend's bytes stand for, by
// the bytes per token learnt from earlier reports of the same backend and
// model: 128 bytes per token learnt, 640 bytes sent, 5 tokens charged.
func TestUsageReportCutStreamChargedAnEstimate(t *testing.T) {
	_, client, als, reg := reportServer(t)
	body := `{"model":"m","stream":true,"max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}`
	_, first := answeredBody(t, client, body)
	sendReports(t, als, usageReport(t, reportKeyOf(first), 200, 16*128, completeUsage(3, 16)))
	waitGauge(t, reg, "streamgate_reservations_outstanding", 0, "the first report settles")
	require.InDelta(t, 16, reconciled(t, reg, "output"), 0)

	_, cut := answeredBody(t, client, body)
	sendReports(t, als, usageReport(t, reportKeyOf(cut), 200, 640, nil))
	waitGauge(t, reg, "streamgate_reservations_outstanding", 0, "the cut stream's report settles")
	assert.InDelta(t, 16+5, reconciled(t, reg, "output"), 0, "the cut stream is charged 5 estimated tokens, not its reservation of 1000")
}

// TestUsageReportFailedResponseChargesNoOutput: a backend error reported
// without usage is charged its input only.
func TestUsageReportFailedResponseChargesNoOutput(t *testing.T) {
	_, client, als, reg := reportServer(t)
	_, br := answeredBody(t, client, `{"model":"m","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`)
	sendReports(t, als, usageReport(t, reportKeyOf(br), 503, 100, nil))
	waitGauge(t, reg, "streamgate_reservations_outstanding", 0, "the report settles")
	assert.InDelta(t, 0, reconciled(t, reg, "output"), 0)
}

// TestInlineReadingKeepsTheResponse: with limits.read_usage inline, a
// response that only needs reading stays on the main stream.
func TestInlineReadingKeepsTheResponse(t *testing.T) {
	_, client, _, _ := reportServer(t, limitedYAML+"  read_usage: inline\nextproc:\n  listen: 127.0.0.1:50051\n")
	main, br := answeredBody(t, client, `{"model":"m","stream":false,"messages":[]}`)
	assert.Empty(t, reportKeyOf(br))
	require.NoError(t, main.Send(withStatus(respBody(`{"usage":{"prompt_tokens":3,"completion_tokens":4}}`, true), 200)))
	_, err := main.Recv()
	require.NoError(t, err, "the main stream reads the response")
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

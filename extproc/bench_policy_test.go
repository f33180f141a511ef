package extproc

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	alsdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	aiv3 "github.com/envoyproxy/go-control-plane/envoy/data/ai/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/extproc/extproctest"
)

// The whole of one benchmark request as `make bench` sends it, on the
// configurations it measures: (c) pass-through and (d) the policy path
// (auth by API key, token limits with the exact o200k_base count, a
// reservation settled by Envoy's usage report, the model rewritten), with the
// metrics registered as `streamgate run` does. Compare the two to see what
// the policy costs on top of routing.

const benchAPIKey = "sk-bench-0123456789"

// benchPolicyConfigs are e2e/bench/configs/passthrough.yaml and full.yaml
// without their listeners.
var benchPolicyConfigs = []struct{ name, yaml string }{
	{"passthrough", `backends:
  - name: bench
    protocol: openai
    endpoints: [127.0.0.1:18080]
models:
  - name: bench-model
    backend: bench
`},
	{"policy", `backends:
  - name: bench
    protocol: openai
    endpoints: [127.0.0.1:18080]
models:
  - name: bench-model
    backend: bench
    upstream_model: fake-model
auth:
  tenants:
    - name: bench
      models: ["*"]
      api_keys: [{hash: "` + auth.HashKey(benchAPIKey) + `"}]
limits:
  default_output_tokens: 256
  tokenizers:
    - {model: bench-model, encoding: o200k_base}
  tenants:
    - name: bench
      requests_per_minute: 100000000
      input_tokens_per_minute: 100000000000
      output_tokens_per_minute: 100000000000
`},
}

// benchServer is a Server for yaml wired as `streamgate run` wires it.
func benchServer(b *testing.B, yaml string) *Server {
	b.Helper()
	cfg, err := config.Parse("bench.yaml", []byte(yaml))
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	srv := NewServer(cfg, NewRoutes(cfg, 1), log, NewMetrics(reg))
	srv.SetServesListener(cfg)
	a, err := auth.New(b.Context(), cfg, auth.Options{Log: log})
	if err != nil {
		b.Fatal(err)
	}
	srv.SetAuth(a)
	if cfg.Limits != nil {
		lim, err := NewLimits(cfg, nil, reg)
		if err != nil {
			b.Fatal(err)
		}
		srv.SetLimits(lim)
	}
	return srv
}

// e2eBenchBody is e2e/bench's request body: a streamed chat request asking
// for usage, its user message filled to about size bytes.
func e2eBenchBody(size int) []byte {
	const head = `{"model":"bench-model","stream":true,"stream_options":{"include_usage":true},"max_tokens":4096,"messages":[{"role":"user","content":"`
	const tail = `"}]}`
	words := strings.Repeat("the quick brown fox jumps over the lazy dog ", size/44+1)
	return []byte(head + words[:max(size-len(head)-len(tail), 1)] + tail)
}

// benchRequestHeaders are the request headers Envoy forwards for one
// e2e/bench request.
func benchRequestHeaders(bodyLen int) *extprocsvcv3.ProcessingRequest {
	r := benchHeaders(bodyLen)
	for _, h := range r.GetRequestHeaders().GetHeaders().GetHeaders() {
		if h.Key == "authorization" {
			h.RawValue = []byte("Bearer " + benchAPIKey)
		}
	}
	return r
}

// benchReport is Envoy's usage report of a request handed over: the
// 16-token response's usage as Envoy's AI protocol manager publishes it.
// The key is set per request (forKey).
type benchReport struct {
	entry *alsdatav3.HTTPAccessLogEntry
	key   *structpb.Value
}

func newBenchReport() *benchReport {
	r := &benchReport{key: structpb.NewStringValue("")}
	usage, _ := anypb.New(&aiv3.TokenUsage{InputTokens: wrapperspb.UInt64(230), OutputTokens: wrapperspb.UInt64(16),
		ExtractionStatus: aiv3.TokenUsage_COMPLETE, Model: "fake-model"})
	r.entry = &alsdatav3.HTTPAccessLogEntry{
		CommonProperties: &alsdatav3.AccessLogCommon{
			StartTime: timestamppb.Now(), Duration: durationpb.New(470 * time.Millisecond),
			Metadata: &corev3.Metadata{
				FilterMetadata:      map[string]*structpb.Struct{contract.ReportNamespace: {Fields: map[string]*structpb.Value{contract.ReportKey: r.key}}},
				TypedFilterMetadata: map[string]*anypb.Any{contract.EnvoyUsageNamespace: usage},
			},
			CustomTags:                map[string]string{contract.ReportTTFTTag: "150000"},
			UpstreamWireBytesReceived: 3900,
		},
		Response: &alsdatav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(200)},
	}
	return r
}

// forKey returns the report of the request handed over under key (valid
// until the next call).
func (r *benchReport) forKey(key string) *alsdatav3.HTTPAccessLogEntry {
	r.key.Kind = &structpb.Value_StringValue{StringValue: key}
	return r.entry
}

// BenchmarkPolicyRequest is one e2e/bench request's whole ext_proc work
// through Server.Process, without gRPC: the main stream (request headers,
// buffered body) and, on the policy path, Envoy's usage report that
// settles its reservation (as the access log service gets it, decoded).
func BenchmarkPolicyRequest(b *testing.B) {
	body := e2eBenchBody(1 << 10)
	headers, bodyReq := benchRequestHeaders(len(body)), benchBodyRequest(body)
	for _, c := range benchPolicyConfigs {
		b.Run(c.name, func(b *testing.B) {
			srv, report := benchServer(b, c.yaml), newBenchReport()
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				main := extproctest.NewStream(ctx, headers, bodyReq)
				if err := srv.Process(main); err != nil || len(main.Sent) != 2 || main.Sent[1].GetRequestBody() == nil {
					b.Fatalf("main stream: %v, answers %v", err, main.Sent)
				}
				if key := reportKeyOf(main.Sent[1]); key != "" {
					srv.reports.settle(report.forKey(key))
				}
			}
			if n := srv.Active(); n != 0 {
				b.Fatalf("%d requests still active", n)
			}
		})
	}
}

// BenchmarkPolicyServerRequest is BenchmarkPolicyRequest through Serve's
// gRPC server on a loopback TCP connection, as Envoy pays it: protobuf
// encoding, HTTP/2 framing and the server's stream handling included (and
// the client's side of them, which Envoy pays for real). The usage report
// is settled as decoded (Envoy batches reports on its access log stream).
// cpu-ns/op is the CPU the process (client and server) spent per request.
func BenchmarkPolicyServerRequest(b *testing.B) {
	body := e2eBenchBody(1 << 10)
	headers, bodyReq := benchRequestHeaders(len(body)), benchBodyRequest(body)
	for _, c := range benchPolicyConfigs {
		b.Run(c.name, func(b *testing.B) {
			srv, report := benchServer(b, c.yaml), newBenchReport()
			client := extproctest.Serve(b, srv)
			ctx := context.Background()
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				var last *extprocsvcv3.ProcessingResponse
				benchExchange(b, client, ctx, []*extprocsvcv3.ProcessingRequest{headers, bodyReq}, func(r *extprocsvcv3.ProcessingResponse) { last = r })
				if key := reportKeyOf(last); key != "" {
					srv.reports.settle(report.forKey(key))
				}
			}
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU is the CPU time the process has used (user and system, every
// thread): on a shared machine, CPU per request varies less than wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchExchange opens one ext_proc stream, sends reqs (waiting for each
// answer when answered is set) and waits for the server to end the stream.
func benchExchange(b *testing.B, client extprocsvcv3.ExternalProcessorClient, ctx context.Context, reqs []*extprocsvcv3.ProcessingRequest, answered func(*extprocsvcv3.ProcessingResponse)) {
	stream, err := client.Process(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, req := range reqs {
		if err := stream.Send(req); err != nil {
			b.Fatal(err)
		}
		if answered != nil {
			r, err := stream.Recv()
			if err != nil {
				b.Fatal(err)
			}
			answered(r)
		}
	}
	if _, err := stream.Recv(); err != io.EOF {
		b.Fatalf("stream ended with %v", err)
	}
}

package extproc

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/streamgate/streamgate/config"
)

// The hot paths of one request: parsing its body, picking its route, the
// processor's answers to request headers and body, a pass-through response
// chunk, and the same exchange through a real gRPC stream.

const benchConfigYAML = `backends:
  - name: bench
    protocol: openai
    endpoints: [127.0.0.1:18080]
models:
  - name: bench-model
    backend: bench
  - name: bench-alias
    backend: bench
    upstream_model: fake-model
`

func benchConfig(b *testing.B) *config.Config {
	b.Helper()
	cfg, err := config.Parse("bench.yaml", []byte(benchConfigYAML))
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// benchBody is a streaming chat request of about size bytes.
func benchBody(model string, size int) []byte {
	head := `{"model":"` + model + `","stream":true,"stream_options":{"include_usage":true},"max_tokens":256,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"`
	tail := `"}]}`
	filler := strings.Repeat("lorem ipsum dolor sit amet ", size/27+1)
	return []byte(head + filler[:max(size-len(head)-len(tail), 1)] + tail)
}

var benchSizes = []struct {
	name string
	size int
}{{"1KiB", 1 << 10}, {"256KiB", 256 << 10}}

func BenchmarkParseRequest(b *testing.B) {
	for _, s := range benchSizes {
		body := benchBody("bench-model", s.size)
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				info, err := parseRequest(body, nil)
				if err != nil || info.Model != "bench-model" || !info.Stream {
					b.Fatalf("parseRequest = %+v, %v", info, err)
				}
			}
		})
	}
}

// BenchmarkCheckDepth is the depth pass parseRequest adds before
// gjson.ValidBytes; compare with BenchmarkValidBytes on the same bodies.
func BenchmarkCheckDepth(b *testing.B) {
	for _, s := range benchSizes {
		body := benchBody("bench-model", s.size)
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if !checkDepth(body, config.DefaultMaxJSONDepth) {
					b.Fatal("refused")
				}
			}
		})
	}
}

// BenchmarkUTF8Valid is the UTF-8 pass parseRequest adds (issue 21).
func BenchmarkUTF8Valid(b *testing.B) {
	for _, s := range benchSizes {
		body := benchBody("bench-model", s.size)
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if !utf8.Valid(body) {
					b.Fatal("refused")
				}
			}
		})
	}
}

func BenchmarkValidBytes(b *testing.B) {
	for _, s := range benchSizes {
		body := benchBody("bench-model", s.size)
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if !gjson.ValidBytes(body) {
					b.Fatal("invalid")
				}
			}
		})
	}
}

func BenchmarkRouteLookup(b *testing.B) {
	routes := NewRoutes(benchConfig(b), 0)
	b.ReportAllocs()
	for b.Loop() {
		if r, err := routes.Pick("bench-alias", "", nil); err != nil || r.Backend != "bench" {
			b.Fatal("no route")
		}
	}
}

func benchHeaders(bodyLen int) *extprocsvcv3.ProcessingRequest {
	hv := func(k, v string) *corev3.HeaderValue { return &corev3.HeaderValue{Key: k, RawValue: []byte(v)} }
	return &extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocsvcv3.HttpHeaders{
		Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			hv(":method", "POST"), hv(":path", "/v1/chat/completions"), hv(":authority", "gateway"), hv(":scheme", "http"),
			hv("content-type", "application/json"), hv("content-length", strconv.Itoa(bodyLen)),
			hv("authorization", "Bearer sk-bench-0123456789"), hv("x-request-id", "3f1c0d8e-bench"), hv("user-agent", "bench"),
		}},
	}}}
}

func benchBodyRequest(body []byte) *extprocsvcv3.ProcessingRequest {
	return &extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_RequestBody{RequestBody: &extprocsvcv3.HttpBody{Body: body, EndOfStream: true}}}
}

// BenchmarkProcessorExchange is one request's whole ext_proc work without
// gRPC: request headers, then the buffered body (routed as is, or with the
// model rewritten for the backend).
func BenchmarkProcessorExchange(b *testing.B) {
	cfg := benchConfig(b)
	routes := NewRoutes(cfg, 0)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, model := range []string{"bench-model", "bench-alias"} {
		for _, s := range benchSizes {
			body := benchBody(model, s.size)
			headers, bodyReq := benchHeaders(len(body)), benchBodyRequest(body)
			b.Run(model+"/"+s.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					p := newProcessor(routes, cfg.Gateway.MaxRequestBodyBytes, log, nil)
					if r := p.handle(headers); r.GetRequestHeaders() == nil {
						b.Fatalf("headers answered %v", r)
					}
					if r := p.handle(bodyReq); r.GetRequestBody() == nil {
						b.Fatalf("body answered %v", r)
					}
					p.finish()
				}
			})
		}
	}
}

// BenchmarkResponseChunk is the per-chunk cost of a response body chunk
// that reaches the processor (only when a request overrides the response
// mode); it must not grow with the stream.
func BenchmarkResponseChunk(b *testing.B) {
	cfg := benchConfig(b)
	p := newProcessor(NewRoutes(cfg, 0), cfg.Gateway.MaxRequestBodyBytes, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	chunk := &extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocsvcv3.HttpBody{
		Body: []byte(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"bench-model","choices":[{"index":0,"delta":{"content":"tok1 "}}]}` + "\n\n"),
	}}}
	b.ReportAllocs()
	for b.Loop() {
		if r := p.handle(chunk); r.GetResponseBody() == nil {
			b.Fatalf("chunk answered %v", r)
		}
	}
}

// BenchmarkServerExchange runs the headers+body exchange through a real
// gRPC stream (in-memory connection): protobuf encoding, HTTP/2 framing and
// the server's stream handling included, as Envoy pays it.
func BenchmarkServerExchange(b *testing.B) {
	cfg := benchConfig(b)
	srv := NewServer(cfg, NewRoutes(cfg, 0), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer(GRPCOptions(cfg.Gateway.MaxRequestBodyBytes)...)
	extprocsvcv3.RegisterExternalProcessorServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	b.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return lis.Dial() }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	client := extprocsvcv3.NewExternalProcessorClient(conn)
	for _, s := range benchSizes {
		body := benchBody("bench-alias", s.size)
		headers, bodyReq := benchHeaders(len(body)), benchBodyRequest(body)
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				stream, err := client.Process(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				for _, req := range []*extprocsvcv3.ProcessingRequest{headers, bodyReq} {
					if err := stream.Send(req); err != nil {
						b.Fatal(err)
					}
					if _, err := stream.Recv(); err != nil {
						b.Fatal(err)
					}
				}
				if err := stream.CloseSend(); err != nil {
					b.Fatal(err)
				}
				if _, err := stream.Recv(); err != io.EOF {
					b.Fatalf("stream ended with %v", err)
				}
			}
		})
	}
}

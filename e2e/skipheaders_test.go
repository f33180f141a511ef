package e2e

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"text/template"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/streamgate/streamgate/envoy"
)

// routingProcessor answers every request phase as Streamgate's routing
// does: set the backend header, remove the client's credential and
// x-streamgate-* headers, clear the route cache, and name the backend in
// dynamic metadata. It ends each stream after the body answer.
type routingProcessor struct {
	extprocsvcv3.UnimplementedExternalProcessorServer
	headers, bodies atomic.Int64
	bodyAttrs       atomic.Value // map[string]any of the body message
}

func (s *routingProcessor) Process(st extprocsvcv3.ExternalProcessor_ProcessServer) error {
	common := &extprocsvcv3.CommonResponse{
		HeaderMutation: &extprocsvcv3.HeaderMutation{
			SetHeaders: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-streamgate-backend", RawValue: []byte("b")},
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}},
			RemoveHeaders: []string{"authorization", "x-streamgate-evil"},
		},
		ClearRouteCache: true,
	}
	md, _ := structpb.NewStruct(map[string]any{"streamgate": map[string]any{"backend": "b"}})
	for {
		req, err := st.Recv()
		if err != nil {
			return nil
		}
		switch req.Request.(type) {
		case *extprocsvcv3.ProcessingRequest_RequestHeaders:
			s.headers.Add(1)
			if err := st.Send(&extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_RequestHeaders{
				RequestHeaders: &extprocsvcv3.HeadersResponse{Response: common}}}); err != nil {
				return nil
			}
		case *extprocsvcv3.ProcessingRequest_RequestBody:
			s.bodies.Add(1)
			if a := req.GetAttributes()["envoy.filters.http.ext_proc"]; a != nil {
				s.bodyAttrs.Store(a.AsMap())
			}
			_ = st.Send(&extprocsvcv3.ProcessingResponse{Response: &extprocsvcv3.ProcessingResponse_RequestBody{
				RequestBody: &extprocsvcv3.BodyResponse{Response: common}}, DynamicMetadata: md})
			return nil
		}
	}
}

// skipHeadersBootstrap is a minimal Streamgate-shaped listener: ext_proc
// (request headers SEND or SKIP, body BUFFERED), optionally a buffer
// filter that holds the router until the body answer, and routes that
// match the backend header, optionally the backend metadata, else a
// catch-all to a cluster without endpoints (as Streamgate's unrouted one).
const skipHeadersBootstrap = `admin: {address: {socket_address: {address: 127.0.0.1, port_value: {{.Admin}}}}}
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: {{.Listen}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: t
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/", headers: [{name: x-streamgate-backend, string_match: {exact: b}}]}
                route: {cluster: backend}
{{- if .MetaRoute}}
              - match:
                  prefix: "/"
                  dynamic_metadata: [{filter: streamgate, path: [{key: backend}], value: {string_match: {exact: b}}}]
                route: {cluster: backend}
{{- end}}
              - match: {prefix: "/"}
                route: {cluster: unrouted}
          http_filters:
          - name: envoy.filters.http.ext_proc
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor
              grpc_service: {envoy_grpc: {cluster_name: extproc}}
              processing_mode: {request_header_mode: {{.HeaderMode}}, response_header_mode: SKIP, request_body_mode: BUFFERED, response_body_mode: NONE}
              message_timeout: 2s
              request_attributes: ["request.path", "request.method", "request.headers['authorization']"]
              metadata_options: {receiving_namespaces: {untyped: [streamgate]}}
{{- if .Hold}}
          - name: envoy.filters.http.buffer
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer, max_request_bytes: 1048576}
{{- end}}
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: backend
    type: STATIC
    load_assignment: {cluster_name: backend, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {{.Backend}}}}}}]}]}
  - name: unrouted
    type: STATIC
    load_assignment: {cluster_name: unrouted}
  - name: extproc
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment: {cluster_name: extproc, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {{.ExtProc}}}}}}]}]}
`

// TestSkippedRequestHeadersCannotRouteOnTheBody pins the Envoy facts that
// keep the request headers message in Streamgate's exchange (issue 16
// item 3; docs/envoy-notes.md): with request headers SKIP and the body
// BUFFERED, (1) the router routes at decodeHeaders, before the body is sent
// to ext_proc at all; (2) held back by a buffer filter, the body message
// arrives (with the request attributes) but header mutations in its answer
// are dropped, so the routing header never lands; (3) routes matching
// dynamic metadata set by the body answer do route, with one message each
// way instead of two, but the client's credential and x-streamgate-*
// headers reach the backend.
func TestSkippedRequestHeadersCannotRouteOnTheBody(t *testing.T) {
	var seen atomic.Value
	seen.Store(http.Header{})
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	bs := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		seen.Store(r.Header.Clone())
		_, _ = io.WriteString(w, "backend")
	})}
	go func() { _ = bs.Serve(bl) }()
	t.Cleanup(func() { bs.Close() })

	for name, tc := range map[string]struct {
		headerMode      string
		hold, metaRoute bool
		status          int
		headers, bodies int64
		leaks           bool
	}{
		"headers sent: routed, headers cleaned":          {headerMode: "SEND", status: 200, headers: 1, bodies: 1},
		"headers skipped: routed before the body":        {headerMode: "SKIP", status: 503},
		"held: the body answer cannot set the header":    {headerMode: "SKIP", hold: true, status: 503, bodies: 1},
		"held, routes on metadata: routed, headers leak": {headerMode: "SKIP", hold: true, metaRoute: true, status: 200, bodies: 1, leaks: true},
	} {
		t.Run(name, func(t *testing.T) {
			proc := &routingProcessor{}
			el, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			gs := grpc.NewServer()
			extprocsvcv3.RegisterExternalProcessorServer(gs, proc)
			go func() { _ = gs.Serve(el) }()
			t.Cleanup(gs.Stop)
			ports, err := freePorts(2)
			require.NoError(t, err)
			port := func(a string) string { _, p, _ := net.SplitHostPort(a); return p }
			var boot bytes.Buffer
			require.NoError(t, template.Must(template.New("b").Parse(skipHeadersBootstrap)).Execute(&boot, map[string]any{
				"Admin": port(ports[0]), "Listen": port(ports[1]), "Backend": port(bl.Addr().String()), "ExtProc": port(el.Addr().String()),
				"HeaderMode": tc.headerMode, "Hold": tc.hold, "MetaRoute": tc.metaRoute}))
			path := filepath.Join(t.TempDir(), "envoy.yaml")
			require.NoError(t, os.WriteFile(path, boot.Bytes(), 0o600))
			var logs syncBuffer
			proc0, err := envoy.Start(t.Context(), os.Getenv("ENVOY_BIN"), path, "warning", &logs)
			require.NoError(t, err)
			t.Cleanup(func() { <-proc0.Done() })
			post := func() (int, error) {
				req, _ := http.NewRequest(http.MethodPost, "http://"+ports[1]+"/v1/chat/completions", strings.NewReader(`{"model":"m"}`))
				req.Header.Set("content-type", "application/json")
				req.Header.Set("authorization", "Bearer client-key")
				req.Header.Set("x-streamgate-evil", "1")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return 0, err
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode, nil
			}
			require.Eventually(t, func() bool { _, err := post(); return err == nil }, 10*time.Second, 50*time.Millisecond, "Envoy is up\n%s", logs.String())
			proc.headers.Store(0)
			proc.bodies.Store(0)
			seen.Store(http.Header{})

			status, err := post()
			require.NoError(t, err)
			assert.Equal(t, tc.status, status)
			assert.Equal(t, tc.headers, proc.headers.Load(), "request headers messages")
			assert.Equal(t, tc.bodies, proc.bodies.Load(), "request body messages")
			if tc.status == 200 {
				h := seen.Load().(http.Header)
				assert.Equal(t, tc.leaks, h.Get("authorization") != "", "client credential upstream")
				assert.Equal(t, tc.leaks, h.Get("x-streamgate-evil") != "", "x-streamgate-* upstream")
			}
			if tc.headerMode == "SKIP" && tc.bodies > 0 {
				attrs, _ := proc.bodyAttrs.Load().(map[string]any)
				assert.Equal(t, "/v1/chat/completions", attrs["request.path"], "request attributes ride on the body message")
				assert.Equal(t, "Bearer client-key", attrs["request.headers['authorization']"])
			}
		})
	}
}

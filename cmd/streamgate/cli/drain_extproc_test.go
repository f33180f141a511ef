package cli

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc"
	"github.com/streamgate/streamgate/extproc/extproctest"
)

// drainWaitLimit bounds the waits of these tests: far above what a loaded
// machine needs to pass an ext_proc message on loopback or run a few drain
// polls (100 ms apart), short enough that a bug fails in seconds.
const drainWaitLimit = 10 * time.Second

// extProcServer serves an ext_proc server for a one-model config on a
// loopback port and returns it with a client.
func extProcServer(t *testing.T) (*extproc.Server, extprocsvcv3.ExternalProcessorClient) {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(`backends:
  - {name: a, protocol: openai, endpoints: ["127.0.0.1:1"]}
models:
  - {name: m, backend: a}
`))
	require.NoError(t, err)
	srv := extproc.NewServer(cfg, extproc.NewRoutes(cfg, 1), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	return srv, extproctest.Serve(t, srv)
}

// sendHeaders opens an ext_proc stream, sends a chat request's headers and
// returns the stream with the answer.
func sendHeaders(t *testing.T, client extprocsvcv3.ExternalProcessorClient) (extprocsvcv3.ExternalProcessor_ProcessClient, *extprocsvcv3.ProcessingResponse) {
	t.Helper()
	s, err := client.Process(t.Context())
	require.NoError(t, err)
	require.NoError(t, s.Send(&extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocsvcv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: ":method", RawValue: []byte("POST")}, {Key: ":path", RawValue: []byte("/v1/chat/completions")},
		}}},
	}}))
	resp, err := s.Recv()
	require.NoError(t, err)
	return s, resp
}

func extProcDrainer(srv *extproc.Server, ready *readiness, timeout time.Duration) drainer {
	return drainer{log: slog.New(slog.NewTextHandler(io.Discard, nil)), timeout: timeout, ready: ready, extProc: srv}
}

// TestDrainWaitsForOpenExtProcStreams: with no Envoy of its own to ask,
// the drain waits for the open ext_proc streams (Server.Active) and
// returns once the last one ends, well before its timeout.
func TestDrainWaitsForOpenExtProcStreams(t *testing.T) {
	srv, client := extProcServer(t)
	open, resp := sendHeaders(t, client)
	require.NotNil(t, resp.GetRequestHeaders(), "the request is past its headers")
	require.Equal(t, int64(1), srv.Active())

	var ready readiness
	ready.set(true)
	done := make(chan struct{})
	go func() { extProcDrainer(srv, &ready, time.Minute).drain(context.Background()); close(done) }()
	// Three drain polls: a drain that does not count the open stream returns
	// at once. A slow machine can only make this pass late, never fail it.
	select {
	case <-done:
		t.Fatal("the drain returned while an ext_proc stream was open")
	case <-time.After(3 * drainPoll):
	}
	require.NoError(t, open.CloseSend())
	select {
	case <-done:
	case <-time.After(drainWaitLimit):
		t.Fatalf("the drain did not return within %v of the last stream's end", drainWaitLimit)
	}
	assert.False(t, ready.get())
}

// TestDrainRefusesNewRequests: once the drain has begun, a request whose
// headers arrive gets a 503 from the ext_proc server.
func TestDrainRefusesNewRequests(t *testing.T) {
	srv, client := extProcServer(t)
	var ready readiness
	ready.set(true)
	done := make(chan struct{})
	go func() { extProcDrainer(srv, &ready, time.Minute).drain(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(drainWaitLimit):
		t.Fatalf("a drain with nothing open did not return within %v", drainWaitLimit)
	}
	_, resp := sendHeaders(t, client)
	ir := resp.GetImmediateResponse()
	require.NotNil(t, ir, "a request arriving during the drain is refused")
	assert.Equal(t, http.StatusServiceUnavailable, int(ir.GetStatus().GetCode()))
}

package extproc

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/extproc/extproctest"
)

// TestServerDrain: after Drain, a request that is already past its headers
// is still routed, a new one gets a 503 OpenAI error, and Active counts the
// open streams.
func TestServerDrain(t *testing.T) {
	cfg := testConfig(t)
	srv := NewServer(cfg, NewRoutes(cfg, 1), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	client := extproctest.Serve(t, srv)
	ctx := t.Context()

	open := func() extprocsvcv3.ExternalProcessor_ProcessClient {
		s, err := client.Process(ctx)
		require.NoError(t, err)
		return s
	}
	exchange := func(s extprocsvcv3.ExternalProcessor_ProcessClient, req *extprocsvcv3.ProcessingRequest) *extprocsvcv3.ProcessingResponse {
		require.NoError(t, s.Send(req))
		resp, err := s.Recv()
		require.NoError(t, err)
		return resp
	}

	before := open()
	require.NotNil(t, exchange(before, reqHeaders("POST", "/v1/chat/completions", false)).GetRequestHeaders())
	assert.Equal(t, int64(1), srv.Active())

	srv.Drain()
	after := open()
	resp := exchange(after, reqHeaders("POST", "/v1/chat/completions", false))
	ir := resp.GetImmediateResponse()
	require.NotNil(t, ir, "a request arriving during the drain is refused")
	assert.Equal(t, http.StatusServiceUnavailable, int(ir.GetStatus().GetCode()))
	var body struct {
		Error struct{ Message, Type, Code string } `json:"error"`
	}
	require.NoError(t, json.Unmarshal(ir.GetBody(), &body))
	assert.Equal(t, "service_unavailable", body.Error.Code)
	assert.Equal(t, "server_error", body.Error.Type)
	assert.Eventually(t, func() bool { return srv.Active() == 1 }, 5*time.Second, 10*time.Millisecond,
		"a refused request's stream ends with its refusal; the admitted one stays open")

	// The request admitted before the drain carries on to its backend.
	br := exchange(before, bodyMsg(`{"model":"public","stream":true,"messages":[]}`))
	assert.True(t, br.GetRequestBody().GetResponse().GetClearRouteCache(), "admitted request is routed")

	require.NoError(t, before.CloseSend())
	require.NoError(t, after.CloseSend())
	assert.Eventually(t, func() bool { return srv.Active() == 0 }, 5*time.Second, 10*time.Millisecond, "streams closed by Envoy are no longer counted")
}

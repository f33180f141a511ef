package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc"
	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/extproc/extproctest"
)

// limitsConfig is reloadConfig's tenant limited to rpm requests per
// minute (no limits section when rpm is 0); credentialEnv as there.
func limitsConfig(t *testing.T, rpm int, credentialEnv string) *config.Config {
	t.Helper()
	cred, limits := "", ""
	if credentialEnv != "" {
		cred = fmt.Sprintf(", credential: {header: authorization, env: %s}", credentialEnv)
	}
	if rpm > 0 {
		limits = fmt.Sprintf("limits: {tenants: [{name: tenant-a, requests_per_minute: %d}]}\n", rpm)
	}
	cfg, err := config.Parse("limits.yaml", fmt.Appendf(nil, `backends:
  - {name: backend-a, protocol: openai, endpoints: ["127.0.0.1:1"]%s}
models:
  - {name: m, backend: backend-a}
auth:
  tenants:
    - {name: tenant-a, models: ["*"], api_keys: [{hash: %s}]}
%s`, cred, auth.HashKey(reloadKey), limits))
	require.NoError(t, err)
	return cfg
}

// requestStatus runs a chat request through srv and returns the status of
// its refusal, or 200 when it was passed on.
func requestStatus(t *testing.T, srv *extproc.Server) int {
	t.Helper()
	st := &extproctest.Stream{Ctx: t.Context(), Reqs: []*extprocsvcv3.ProcessingRequest{
		{Request: &extprocsvcv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocsvcv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: ":method", RawValue: []byte("POST")}, {Key: ":path", RawValue: []byte("/v1/chat/completions")},
			{Key: "authorization", RawValue: []byte("Bearer " + reloadKey)},
		}}}}},
		{Request: &extprocsvcv3.ProcessingRequest_RequestBody{RequestBody: &extprocsvcv3.HttpBody{Body: []byte(`{"model":"m","messages":[]}`), EndOfStream: true}}},
	}}
	require.NoError(t, srv.Process(st))
	for _, r := range st.Sent {
		if ir := r.GetImmediateResponse(); ir != nil {
			return int(ir.GetStatus().GetCode())
		}
	}
	return 200
}

// TestReloadAppliesLimitsLive: a reload changes a tenant's rate from its
// next request, brings limits to a process started without them, and a
// reload that fails keeps the limits in force.
func TestReloadAppliesLimitsLive(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := limitsConfig(t, 0, "")
	srv := extproc.NewServer(start, extproc.NewRoutes(start, 1), log, nil)
	a, err := auth.New(t.Context(), start, auth.Options{Log: log})
	require.NoError(t, err)
	srv.SetAuth(a)
	_, authCancel := context.WithCancel(t.Context())
	reload := extProcReloader(t.Context(), srv, log, authCancel, &liveLimits{reg: prometheus.NewRegistry()})
	step := func(c *config.Config) {
		t.Helper()
		apply, err := reload(c)
		require.NoError(t, err)
		apply()
	}
	assert.Equal(t, 200, requestStatus(t, srv))
	assert.Equal(t, 200, requestStatus(t, srv), "no limits at start")

	step(limitsConfig(t, 1, ""))
	assert.Equal(t, 200, requestStatus(t, srv))
	assert.Equal(t, 429, requestStatus(t, srv), "limits added by a reload apply")

	apply, err := reload(limitsConfig(t, 60000, "SG_RELOAD_UNSET_CREDENTIAL"))
	require.Error(t, err)
	assert.Nil(t, apply)
	time.Sleep(5 * time.Millisecond)
	assert.Equal(t, 429, requestStatus(t, srv), "a failed reload keeps the old rate")

	step(limitsConfig(t, 60000, ""))
	time.Sleep(5 * time.Millisecond) // a few requests' worth at 1000 per second
	assert.Equal(t, 200, requestStatus(t, srv), "the raised rate applies to the next request")

	step(limitsConfig(t, 0, ""))
	for range 3 {
		assert.Equal(t, 200, requestStatus(t, srv), "limits removed by a reload")
	}
}

package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc"
	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/extproc/extproctest"
)

const reloadKey = "sk-reload-0123456789abcdef"

// reloadConfig is a config whose tenant and backend are both named after
// gen; with credentialEnv set, backend-gen needs that environment variable.
func reloadConfig(t *testing.T, gen, credentialEnv string) *config.Config {
	t.Helper()
	cred := ""
	if credentialEnv != "" {
		cred = fmt.Sprintf(", credential: {header: authorization, env: %s}", credentialEnv)
	}
	cfg, err := config.Parse(gen+".yaml", fmt.Appendf(nil, `backends:
  - {name: backend-%[1]s, protocol: openai, endpoints: ["127.0.0.1:1"]%[3]s}
models:
  - {name: m, backend: backend-%[1]s}
auth:
  tenant_header: x-tenant
  tenants:
    - {name: tenant-%[1]s, models: ["*"], api_keys: [{hash: %[2]s}]}
`, gen, auth.HashKey(reloadKey), cred))
	require.NoError(t, err)
	return cfg
}

// oneRequest runs a chat request through srv and returns the tenant its
// auth verified and the backend cluster its routes chose.
func oneRequest(t *testing.T, srv *extproc.Server) (tenant, cluster string) {
	t.Helper()
	st := &extproctest.Stream{Ctx: t.Context(), Reqs: []*extprocsvcv3.ProcessingRequest{
		{Request: &extprocsvcv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocsvcv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: ":method", RawValue: []byte("POST")}, {Key: ":path", RawValue: []byte("/v1/chat/completions")},
			{Key: "authorization", RawValue: []byte("Bearer " + reloadKey)},
		}}}}},
		{Request: &extprocsvcv3.ProcessingRequest_RequestBody{RequestBody: &extprocsvcv3.HttpBody{Body: []byte(`{"model":"m","messages":[]}`), EndOfStream: true}}},
	}}
	require.NoError(t, srv.Process(st))
	require.Len(t, st.Sent, 2)
	for _, h := range st.Sent[0].GetRequestHeaders().GetResponse().GetHeaderMutation().GetSetHeaders() {
		if h.GetHeader().GetKey() == "x-tenant" {
			tenant = string(h.GetHeader().GetRawValue())
		}
	}
	for _, h := range st.Sent[1].GetRequestBody().GetResponse().GetHeaderMutation().GetSetHeaders() {
		if h.GetHeader().GetKey() == "x-streamgate-backend" {
			cluster = string(h.GetHeader().GetRawValue())
		}
	}
	return tenant, cluster
}

// TestFailedReloadKeepsGeneration (issue 14): a reload whose authenticator
// cannot be built (a backend credential's variable is unset) changes
// nothing: requests keep the old routes with the old auth. A good reload
// then moves both at once.
func TestFailedReloadKeepsGeneration(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	old := reloadConfig(t, "old", "")
	srv := extproc.NewServer(old, extproc.NewRoutes(old, 1), log, nil)
	a, err := auth.New(t.Context(), old, auth.Options{Log: log})
	require.NoError(t, err)
	srv.SetAuth(a)
	authCtx, authCancel := context.WithCancel(t.Context())
	reload := extProcReloader(t.Context(), srv, log, authCancel, &liveLimits{})

	apply, err := reload(reloadConfig(t, "bad", "SG_RELOAD_UNSET_CREDENTIAL"))
	require.Error(t, err)
	assert.Nil(t, apply)
	tenant, cluster := oneRequest(t, srv)
	assert.Equal(t, "tenant-old", tenant)
	assert.Contains(t, cluster, "backend-old")
	assert.NoError(t, authCtx.Err(), "the live authenticator keeps its refreshers")

	apply, err = reload(reloadConfig(t, "new", ""))
	require.NoError(t, err)
	apply()
	tenant, cluster = oneRequest(t, srv)
	assert.Equal(t, "tenant-new", tenant)
	assert.Contains(t, cluster, "backend-new")
	assert.Error(t, authCtx.Err(), "the replaced authenticator's refreshers stop")
}

package extproc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/extproc/extproctest"
)

// testGeneration is one config version: the same API key and model as
// every other, but its own tenant name and backend cluster, so a request's
// answer shows which generation its auth and its routes came from.
type testGeneration struct {
	cfg     *config.Config
	routes  *Routes
	auth    *auth.Authenticator
	cluster string
}

func newTestGeneration(t *testing.T, name string) testGeneration {
	t.Helper()
	cfg, err := config.Parse(name+".yaml", fmt.Appendf(nil, `backends:
  - {name: backend-%[1]s, protocol: openai, endpoints: ["127.0.0.1:1"]}
models:
  - {name: m, backend: backend-%[1]s}
auth:
  tenant_header: x-tenant
  tenants:
    - {name: tenant-%[1]s, models: ["*"], api_keys: [{hash: %[2]s}]}
`, name, auth.HashKey(testKey)))
	require.NoError(t, err)
	a, err := auth.New(t.Context(), cfg, auth.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	routes := NewRoutes(cfg, 1)
	r, err := routes.Pick("m", "", nil)
	require.NoError(t, err)
	return testGeneration{cfg: cfg, routes: routes, auth: a, cluster: r.Cluster}
}

// TestReloadNeverMixesGenerations (issue 14): reloads swap routes and auth
// at once, so no request runs one config's routes with another's auth.
// Requests run while a reloader flips between two generations; each
// request's tenant (from auth) and backend (from routes) must name the
// same generation. When routes and auth were stored in separate atomics
// (Update, then SetAuth), requests starting between the two stores were
// admitted by the old tenant and sent to the new backend.
func TestReloadNeverMixesGenerations(t *testing.T) {
	gens := map[string]testGeneration{"a": newTestGeneration(t, "a"), "b": newTestGeneration(t, "b")}
	srv := NewServer(gens["a"].cfg, gens["a"].routes, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	srv.SetAuth(gens["a"].auth)

	ctx, stop := context.WithCancel(t.Context())
	var reloads sync.WaitGroup
	reloads.Add(1)
	go func() {
		defer reloads.Done()
		for ctx.Err() == nil {
			for _, name := range []string{"b", "a"} {
				g := gens[name]
				srv.Update(g.cfg, g.routes, g.auth, nil)
			}
		}
	}()
	var mixed atomic.Int64
	var requests sync.WaitGroup
	for range 4 {
		requests.Add(1)
		go func() {
			defer requests.Done()
			for range 2000 {
				st := extproctest.NewStream(ctx,
					headersMsg("POST", "/v1/chat/completions", map[string]string{"authorization": "Bearer " + testKey}, false),
					bodyMsg(`{"model":"m","messages":[]}`))
				if err := srv.Process(st); err != nil || len(st.Sent) != 2 {
					mixed.Add(1)
					continue
				}
				tenant := setHeaders(st.Sent[0].GetRequestHeaders().GetResponse().GetHeaderMutation())["x-tenant"]
				cluster := setHeaders(st.Sent[1].GetRequestBody().GetResponse().GetHeaderMutation())[contract.BackendHeader]
				if g, ok := gens[tenant[len("tenant-"):]]; !ok || g.cluster != cluster {
					mixed.Add(1)
				}
			}
		}()
	}
	requests.Wait()
	stop()
	reloads.Wait()
	assert.Zero(t, mixed.Load(), "requests that saw routes and auth of different generations")
}

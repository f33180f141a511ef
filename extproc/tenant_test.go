package extproc

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/auth"
)

// TestLimitedTenantIsTheVerifiedOne: with auth on, a client cannot charge
// its requests to another tenant through the limits tenant header.
func TestLimitedTenantIsTheVerifiedOne(t *testing.T) {
	const key = "sk-unit-tenant-0123456789"
	cfg, err := config.Parse("t.yaml", []byte(fmt.Sprintf(`backends:
  - {name: a, protocol: openai, endpoints: ["127.0.0.1:1"]}
models:
  - {name: m, backend: a}
auth:
  tenants:
    - {name: acme, models: ["*"], api_keys: [{hash: %s}]}
limits:
  tenant_header: x-tenant
  tenants:
    - {name: acme, requests_per_minute: 100}
    - {name: victim, requests_per_minute: 1}
`, auth.HashKey(key))))
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := auth.New(t.Context(), cfg, auth.Options{Log: log})
	require.NoError(t, err)
	lim, err := NewLimits(cfg, nil, prometheus.NewRegistry())
	require.NoError(t, err)

	for i := range 3 {
		p := newProcessor(NewRoutes(cfg, 1), 1<<20, log, nil)
		p.ctx, p.auth, p.limits = t.Context(), a, lim
		r := p.handle(reqHeaders("POST", "/v1/chat/completions", false, "authorization", "Bearer "+key, "x-tenant", "victim"))
		require.Nil(t, r.GetImmediateResponse(), "request %d refused at headers", i)
		assert.Equal(t, "acme", p.Tenant)
		r = p.handle(bodyMsg(`{"model":"m","messages":[]}`))
		require.Nil(t, r.GetImmediateResponse(), "request %d charged to the header's tenant", i)
		p.finish()
	}
}

// TestPinNeedsTenantPermission: with auth on, only tenants with
// pin_versions may choose a version, and only on models that allow it.
func TestPinNeedsTenantPermission(t *testing.T) {
	const pinner, plain = "sk-unit-pinner-0123456789", "sk-unit-plain-0123456789"
	cfg, err := config.Parse("t.yaml", []byte(fmt.Sprintf(`backends:
  - {name: a, protocol: openai, endpoints: ["127.0.0.1:1"]}
  - {name: b, protocol: openai, endpoints: ["127.0.0.1:2"]}
models:
  - name: m
    allow_pin: true
    versions:
      - {name: v1, backend: a, weight: 1}
      - {name: canary, backend: b, weight: 0}
auth:
  tenants:
    - {name: qa, models: ["*"], pin_versions: true, api_keys: [{hash: %s}]}
    - {name: users, models: ["*"], api_keys: [{hash: %s}]}
`, auth.HashKey(pinner), auth.HashKey(plain))))
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := auth.New(t.Context(), cfg, auth.Options{Log: log})
	require.NoError(t, err)
	run := func(key string) (*processor, int) {
		p := newProcessor(NewRoutes(cfg, 1), 1<<20, log, nil)
		p.ctx, p.auth = t.Context(), a
		p.handle(reqHeaders("POST", "/v1/chat/completions", false, "authorization", "Bearer "+key, contract.VersionHeader, "canary"))
		status, _ := immediateStatus(t, p.handle(bodyMsg(`{"model":"m","messages":[]}`)))
		return p, status
	}
	p, status := run(pinner)
	require.Zero(t, status)
	assert.Equal(t, "canary", p.route.Version)
	_, status = run(plain)
	assert.Equal(t, http.StatusForbidden, status)
}

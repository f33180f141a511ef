package cli

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

func redisLimitsConfig(t *testing.T, redis string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("l.yaml", []byte(`extproc:
  message_timeout: 5s
backends:
  - {name: a, protocol: openai, endpoints: ["127.0.0.1:8000"]}
models:
  - {name: m, backend: a}
limits:
  store: redis
  redis: `+redis+`
  tenants: [{name: "*", requests_per_minute: 1}]
`))
	require.NoError(t, err)
	return cfg
}

func TestNewLimitsRedisPasswordEnvMustBeSet(t *testing.T) {
	t.Setenv("STREAMGATE_TEST_REDIS_PW", "")
	cfg := redisLimitsConfig(t, `{address: "127.0.0.1:1", password_env: STREAMGATE_TEST_REDIS_PW}`)
	_, err := newLimits(t.Context(), cfg, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "STREAMGATE_TEST_REDIS_PW is empty or unset")
}

func TestNewLimitsBuildsTheRedisStore(t *testing.T) {
	addr := os.Getenv("STREAMGATE_TEST_REDIS")
	if addr == "" {
		if os.Getenv("STREAMGATE_REQUIRE_ALL") == "1" {
			t.Fatal("STREAMGATE_TEST_REDIS is unset and STREAMGATE_REQUIRE_ALL=1: Redis is required")
		}
		t.Skip("STREAMGATE_TEST_REDIS is unset: no Redis to test against")
	}
	for name, tc := range map[string]struct {
		redis, wantLog string
	}{
		"reachable":   {"{address: \"" + addr + "\"}", "rate limits shared through redis"},
		"unreachable": {`{address: "127.0.0.1:1", fail_open: true}`, "rate limit store unreachable: admitting requests without rate limits"},
	} {
		t.Run(name, func(t *testing.T) {
			var logs bytes.Buffer
			reg := prometheus.NewRegistry()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			lim, err := newLimits(ctx, redisLimitsConfig(t, tc.redis), reg, slog.New(slog.NewTextHandler(&logs, nil)))
			require.NoError(t, err, "an unreachable Redis is an outage, not a startup failure")
			require.NotNil(t, lim)
			assert.Contains(t, logs.String(), tc.wantLog)
			families, err := reg.Gather()
			require.NoError(t, err)
			var names []string
			for _, f := range families {
				names = append(names, f.GetName())
			}
			assert.Contains(t, names, "streamgate_ratelimit_store_errors_total")
			assert.Contains(t, names, "streamgate_ratelimit_store_outage")
		})
	}
}

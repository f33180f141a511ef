package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const limitsBase = `extproc:
  message_timeout: 5s
backends:
  - name: a
    protocol: openai
    endpoints: [127.0.0.1:8000]
models:
  - name: m
    backend: a
`

func TestLimitsDecodeWithDefaults(t *testing.T) {
	cfg, err := Parse("l.yaml", []byte(limitsBase+`limits:
  tokenizers:
    - {model: m, encoding: o200k_base}
  tenants:
    - name: acme
      requests_per_minute: 60
      total_tokens_per_minute: 1000
      models:
        - name: m
          concurrent_streams: 2
  backends:
    - {name: a, max_in_flight: 4}
`))
	require.NoError(t, err)
	l := cfg.Limits
	require.NotNil(t, l)
	assert.Equal(t, DefaultLimitsTenantHeader, l.TenantHeader)
	assert.Equal(t, DefaultTenant, l.DefaultTenant)
	assert.Equal(t, LimitStoreMemory, l.Store)
	assert.Equal(t, int64(DefaultOutputTokens), l.DefaultOutputTokens)
	assert.Equal(t, time.Second, l.Queue.MaxWait)
	assert.Equal(t, int64(60), l.Tenants[0].RequestsPerMinute)
	assert.Equal(t, 2, l.Tenants[0].Models[0].ConcurrentStreams)
	assert.Equal(t, 4, l.Backends[0].MaxInFlight)
}

func TestLimitsRedisSection(t *testing.T) {
	cfg, err := Parse("l.yaml", []byte(limitsBase+"limits:\n  store: redis\n  redis: {address: 127.0.0.1:6390, password_env: REDIS_PASSWORD, db: 2, fail_open: true}\n"))
	require.NoError(t, err)
	r := cfg.Limits.Redis
	require.NotNil(t, r)
	assert.Equal(t, "REDIS_PASSWORD", r.PasswordEnv)
	assert.Equal(t, 2, r.DB)
	assert.True(t, r.FailOpen)
	assert.Equal(t, DefaultRedisTimeout, r.Timeout)
	assert.Equal(t, "streamgate", r.KeyPrefix)
	assert.Equal(t, ConcurrencyShared, r.Concurrency, "concurrency is shared through Redis by default")
	assert.Equal(t, DefaultLeaseTTL, r.LeaseTTL)
}

func TestLimitsWithoutSectionAreNil(t *testing.T) {
	cfg, err := Parse("l.yaml", []byte(limitsBase))
	require.NoError(t, err)
	assert.Nil(t, cfg.Limits)
}

func TestLimitsInvalid(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"unknown model":      {"  tenants:\n    - name: t\n      models: [{name: nope}]\n", `limits model "nope", which is not defined`},
		"unknown backend":    {"  backends: [{name: zz, max_in_flight: 1}]\n", `backend "zz", which is not defined`},
		"negative rate":      {"  tenants: [{name: t, requests_per_minute: -1}]\n", "requests_per_minute must not be negative"},
		"duplicate tenant":   {"  tenants: [{name: t}, {name: t}]\n", `tenant "t" is listed twice`},
		"bad store":          {"  store: etcd\n", `store "etcd" is not supported`},
		"redis without addr": {"  store: redis\n", "needs a redis section"},
		"redis brace prefix": {"  store: redis\n  redis: {address: 127.0.0.1:6379, key_prefix: \"a{b\"}\n", "must not contain { or }"},
		"redis negative db":  {"  store: redis\n  redis: {address: 127.0.0.1:6379, db: -1}\n", "db must not be negative"},
		"redis cluster db":   {"  store: redis\n  redis: {address: 127.0.0.1:6379, cluster: true, db: 1}\n", "only db 0"},
		"redis concurrency":  {"  store: redis\n  redis: {address: 127.0.0.1:6379, concurrency: global}\n", `concurrency "global" is not supported`},
		"short lease ttl":    {"  store: redis\n  redis: {address: 127.0.0.1:6379, lease_ttl: 200ms}\n", "lease_ttl 200ms must be at least 1s"},
		"bad encoding":       {"  tokenizers: [{model: m, encoding: p99k}]\n", `encoding "p99k" is not supported`},
		"wait too long":      {"  queue: {max_wait: 5s}\n", "below extproc.message_timeout"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("l.yaml", []byte(limitsBase+"limits:\n"+tc.yaml))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			require.NotEmpty(t, Problems(err))
			assert.Positive(t, Problems(err)[0].Line, "problems are located")
		})
	}
}

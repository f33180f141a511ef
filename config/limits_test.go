package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

func TestParseBudgetWindow(t *testing.T) {
	for in, want := range map[string]BudgetWindow{
		"day": {Calendar: BudgetDay}, "month": {Calendar: BudgetMonth}, "1h": {Rolling: time.Hour}, "1m": {Rolling: time.Minute},
		"8784h": {Rolling: 8784 * time.Hour}, "90m": {Rolling: 90 * time.Minute},
	} {
		got, err := ParseBudgetWindow(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "week", "Day", "59s", "8785h", "-1h", "1", "0"} {
		_, err := ParseBudgetWindow(in)
		assert.Error(t, err, in)
	}
}

func FuzzParseBudgetWindow(f *testing.F) {
	for _, s := range []string{"day", "month", "1h", "1m", "8784h", "1h30m", "1e3h", ".5h", "-0s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseBudgetWindow(s)
		if err != nil {
			return
		}
		if w.Calendar == "" {
			require.GreaterOrEqual(t, w.Rolling, MinRollingBudget)
			require.LessOrEqual(t, w.Rolling, MaxRollingBudget)
			again, err := ParseBudgetWindow(w.String())
			require.NoError(t, err)
			require.Equal(t, w, again)
		}
	})
}

func TestBudgetsValidate(t *testing.T) {
	base := `
backends: [{name: b, protocol: openai, endpoints: ["127.0.0.1:8000"]}]
models: [{name: m, backend: b}]
auth:
  tenants:
    - name: acme
      models: ["*"]
      api_keys: [{name: ci, hash: "sha256:` + strings.Repeat("a", 64) + `"}]
limits:
  budget: {time_zone: %s, warn_percent: %s}
  tenants:
    - name: acme
      budgets: [%s]
      api_keys: [{name: %s, budgets: [{window: day, amount: 1}]}]
`
	ok := fmt.Sprintf(base, "Europe/Paris", "80", "{window: month, amount: 100}, {window: 1h, amount: 2}", "ci")
	cfg := loadText(t, ok)
	assert.True(t, cfg.Limits.HasBudgets())
	assert.Equal(t, "Europe/Paris", cfg.Limits.Budget.Location().String())
	for name, tc := range map[string]struct{ text, want string }{
		"zone":     {fmt.Sprintf(base, "Mars/Olympus", "80", "{window: day, amount: 1}", "ci"), "time_zone"},
		"warn":     {fmt.Sprintf(base, "UTC", "120", "{window: day, amount: 1}", "ci"), "warn_percent"},
		"window":   {fmt.Sprintf(base, "UTC", "80", "{window: week, amount: 1}", "ci"), "window \"week\""},
		"twice":    {fmt.Sprintf(base, "UTC", "80", "{window: day, amount: 1}, {window: day, amount: 2}", "ci"), "two budgets"},
		"amount":   {fmt.Sprintf(base, "UTC", "80", "{window: day, amount: 0}", "ci"), "amount must be above 0"},
		"bad key":  {fmt.Sprintf(base, "UTC", "80", "{window: day, amount: 1}", "nope"), "no API key named"},
		"too much": {fmt.Sprintf(base, "UTC", "80", "{window: day, amount: 2e9}", "ci"), "at most"},
	} {
		f := filepath.Join(t.TempDir(), "c.yaml")
		require.NoError(t, os.WriteFile(f, []byte(tc.text), 0o600))
		_, err := Load(f)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), tc.want, name)
	}
}

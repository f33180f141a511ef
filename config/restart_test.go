package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const restartBase = `
gateway: {max_request_body_bytes: 1000, drain_timeout: 30s}
extproc: {listen: "127.0.0.1:50051"}
xds: {listen: "127.0.0.1:18001"}
metrics: {listen: "127.0.0.1:9464"}
envoy: {admin: "127.0.0.1:9901", node_id: a, max_heap_bytes: 1073741824}
backends: [{name: b, protocol: openai, endpoints: ["127.0.0.1:8000"]}]
models: [{name: m, backend: b}]
limits: {store: redis, redis: {address: "127.0.0.1:6379", password_env: SG_PW, db: 0, timeout: 50ms, key_prefix: sg, concurrency: shared, lease_ttl: 10s}, tenants: [{name: t, requests_per_minute: 10}]}
telemetry: {nats: {url: "nats://127.0.0.1:4222"}}
`

// restartEdits change one setting of restartBase each, keyed by the
// RestartOnly or StartOnly path they change.
var restartEdits = map[string][2]string{
	"extproc.listen":                 {`127.0.0.1:50051`, `127.0.0.1:50052`},
	"xds.listen":                     {`127.0.0.1:18001`, `127.0.0.1:18002`},
	"metrics.listen":                 {`127.0.0.1:9464`, `127.0.0.1:9465`},
	"envoy.admin":                    {`127.0.0.1:9901`, `127.0.0.1:9902`},
	"envoy.node_id":                  {`node_id: a`, `node_id: z`},
	"gateway.max_request_body_bytes": {`max_request_body_bytes: 1000`, `max_request_body_bytes: 2000`},
	"gateway.max_upload_bytes":       {`max_request_body_bytes: 1000`, `max_request_body_bytes: 1000, max_upload_bytes: 5000`},
	"envoy.max_heap_bytes":           {`max_heap_bytes: 1073741824`, `max_heap_bytes: 2147483648`},
	"limits.store":                   {`store: redis, redis:`, `store: memory, redis:`},
	"limits.redis.address":           {`127.0.0.1:6379`, `127.0.0.1:6380`},
	"limits.redis.password_env":      {`password_env: SG_PW`, `password_env: SG_PW2`},
	"limits.redis.db":                {`db: 0,`, `db: 2,`},
	"limits.redis.cluster":           {`db: 0,`, `db: 0, cluster: true,`},
	"limits.redis.timeout":           {`timeout: 50ms`, `timeout: 60ms`},
	"limits.redis.key_prefix":        {`key_prefix: sg`, `key_prefix: sg2`},
	"limits.redis.concurrency":       {`concurrency: shared`, `concurrency: local`},
	"limits.redis.lease_ttl":         {`lease_ttl: 10s`, `lease_ttl: 20s`},
	"telemetry.nats":                 {`nats://127.0.0.1:4222`, `nats://127.0.0.1:4223`},
	"telemetry.tracing":              {`telemetry: {nats:`, `telemetry: {tracing: {endpoint: "127.0.0.1:4317"}, nats:`},
	"limits.budget.usage_token_env":  {`limits: {store`, `limits: {budget: {usage_token_env: SG_USAGE}, store`},
	"bridge":                         {`telemetry: {nats:`, "bridge: {sources: [{name: q, dead_letter: dl, nats: {url: \"nats://127.0.0.1:4222\", stream: Q}}]}\ntelemetry: {nats:"},
	"batch":                          {`telemetry: {nats:`, "batch: {dir: /tmp/sg-batch}\ntelemetry: {nats:"},
}

func loadText(t *testing.T, text string) *Config {
	t.Helper()
	f := filepath.Join(t.TempDir(), "streamgate.yaml")
	require.NoError(t, os.WriteFile(f, []byte(text), 0o600))
	c, err := Load(f)
	require.NoError(t, err)
	return c
}

func TestReloadRefusesEveryRestartOnlySettingAndNothingElse(t *testing.T) {
	old := loadText(t, restartBase)
	for _, s := range RestartOnly {
		t.Run(s.Path, func(t *testing.T) {
			edit, ok := restartEdits[s.Path]
			require.True(t, ok, "add an edit of %s to restartEdits", s.Path)
			next := loadText(t, strings.Replace(restartBase, edit[0], edit[1], 1))
			err := reloadable(old, next)
			require.Error(t, err, "a change to %s was not refused", s.Path)
			require.Contains(t, err.Error(), s.Path)
			require.Contains(t, err.Error(), "takes a restart")
		})
	}
	for _, s := range StartOnly {
		t.Run(s.Path, func(t *testing.T) {
			edit, ok := restartEdits[s.Path]
			require.True(t, ok, "add an edit of %s to restartEdits", s.Path)
			text := strings.Replace(restartBase, edit[0], edit[1], 1)
			require.NotEqual(t, restartBase, text)
			require.NoError(t, reloadable(old, loadText(t, text)), "a change to %s is read at start only, not refused", s.Path)
		})
	}
	t.Run("gateway.drain_timeout reloads live", func(t *testing.T) {
		next := loadText(t, strings.Replace(restartBase, "drain_timeout: 30s", "drain_timeout: 40s", 1))
		require.NoError(t, reloadable(old, next))
		assert.Empty(t, startOnlyChanges(old, next), "the next shutdown drains for the new timeout")
	})
	t.Run("gateway.listen reloads live", func(t *testing.T) {
		next := loadText(t, strings.Replace(restartBase, "gateway: {", `gateway: {listen: "0.0.0.0:10001", `, 1))
		require.NoError(t, reloadable(old, next))
	})
}

package config

import (
	"fmt"
	"reflect"
)

// RestartSetting is one setting a running gateway cannot change: a reload
// whose file changes it is refused whole, and the running config stays.
type RestartSetting struct {
	// Path is the setting's YAML path, e.g. "extproc.listen"; a section's
	// path ("limits") covers every field under it.
	Path string
	// Why says what holds the value until a restart.
	Why string
	// value reads the setting from a config.
	value func(*Config) any
}

// RestartOnly is the one list of restart-only settings: the config
// watcher refuses a reload that changes one, and docs/config.md (make
// docs) marks every field under one "restart". Read-only.
var RestartOnly = []RestartSetting{
	{"extproc.listen", "the ext_proc server's socket", func(c *Config) any { return c.ExtProc.Listen }},
	{"xds.listen", "the xDS server's socket", func(c *Config) any { return c.XDS.Listen }},
	{"metrics.listen", "the metrics server's socket", func(c *Config) any { return c.Metrics.Listen }},
	{"envoy.admin", "the bootstrap Envoy was started with", func(c *Config) any { return c.Envoy.Admin }},
	{"envoy.node_id", "the bootstrap Envoy was started with", func(c *Config) any { return c.Envoy.NodeID }},
	{"gateway.max_request_body_bytes", "the running ext_proc server's body bound", func(c *Config) any { return c.Gateway.MaxRequestBodyBytes }},
	{"gateway.max_upload_bytes", "the running ext_proc server's body bound", func(c *Config) any { return c.Gateway.MaxUploadBytes }},
	{"envoy.max_heap_bytes", "the bootstrap Envoy was started with", func(c *Config) any { return c.Envoy.MaxHeapBytes }},
	// The rest of limits reloads live on the running limiter's state; its
	// store and Redis connection are built at start. No limits section
	// counts as the memory store.
	{"limits.store", "the rate limit store is built at start", func(c *Config) any { return limitStore(c) }},
	{"limits.redis.address", "the Redis client is connected at start", redisField(func(r *Redis) any { return r.Address })},
	{"limits.redis.password_env", "the Redis client is connected at start", redisField(func(r *Redis) any { return r.PasswordEnv })},
	{"limits.redis.db", "the Redis client is connected at start", redisField(func(r *Redis) any { return r.DB })},
	{"limits.redis.cluster", "the Redis client is connected at start", redisField(func(r *Redis) any { return r.Cluster })},
	{"limits.redis.timeout", "the Redis client is connected at start", redisField(func(r *Redis) any { return r.Timeout })},
	{"limits.redis.key_prefix", "the Redis store is built at start", redisField(func(r *Redis) any { return r.KeyPrefix })},
	{"limits.redis.concurrency", "the shared concurrency leases are set up at start", redisField(func(r *Redis) any { return r.Concurrency })},
	{"limits.redis.lease_ttl", "the lease heartbeat starts with the process", redisField(func(r *Redis) any { return r.LeaseTTL })},
}

// limitStore is the store kind c's limits use; no limits count as memory,
// which a reload can start from.
func limitStore(c *Config) string {
	if c.Limits == nil {
		return LimitStoreMemory
	}
	return c.Limits.Store
}

// redisField reads a Redis setting of c, or nil when c does not use the
// redis store (the section is then unused).
func redisField(f func(*Redis) any) func(*Config) any {
	return func(c *Config) any {
		if limitStore(c) != LimitStoreRedis || c.Limits.Redis == nil {
			return nil
		}
		return f(c.Limits.Redis)
	}
}

// StartOnly are the settings the running process reads only when it
// starts (cmd/streamgate/cli/serve.go): a reload that changes one is
// accepted and applies everything else, but the change itself waits for
// the next restart. docs/config.md marks every field under one "next
// start". Read-only.
var StartOnly = []RestartSetting{
	{"telemetry.nats", "the usage event sink is connected at start", func(c *Config) any { return c.Telemetry.NATS }},
	{"telemetry.tracing", "the OTLP exporter is set up at start", func(c *Config) any { return c.Telemetry.Tracing }},
	{"limits.budget.usage_token_env", "the usage API's token is read at start", func(c *Config) any {
		if c.Limits == nil {
			return ""
		}
		return c.Limits.Budget.UsageTokenEnv
	}},
	{"bridge", "the bridge connects to its brokers and reads its credentials at start", func(c *Config) any { return c.Bridge }},
	{"batch", "the batch service opens its store, listens and reads its credentials at start", func(c *Config) any { return c.Batch }},
}

// startOnlyChanges lists, as sentences, the StartOnly settings that differ
// between old and next: an accepted reload leaves them as they were.
func startOnlyChanges(old, next *Config) []string {
	var msgs []string
	for _, s := range StartOnly {
		if !reflect.DeepEqual(s.value(old), s.value(next)) {
			msgs = append(msgs, fmt.Sprintf("%s changed but keeps its old value until a restart: %s", s.Path, s.Why))
		}
	}
	return msgs
}

// restartChange returns the first restart-only setting that differs
// between old and next, as a sentence, or "" when none does.
func restartChange(old, next *Config) string {
	for _, s := range RestartOnly {
		a, b := s.value(old), s.value(next)
		if reflect.DeepEqual(a, b) {
			continue
		}
		if reflect.TypeOf(a).Kind() == reflect.Pointer {
			return fmt.Sprintf("the %s section changed; that takes a restart", s.Path)
		}
		return fmt.Sprintf("%s changed from %q to %q; that takes a restart", s.Path, fmt.Sprint(a), fmt.Sprint(b))
	}
	return ""
}

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
	{"envoy.max_heap_bytes", "the bootstrap Envoy was started with", func(c *Config) any { return c.Envoy.MaxHeapBytes }},
	// Limiter state (buckets, slots, queue) lives in the running process;
	// a new limits section would start it afresh.
	{"limits", "the limiter's buckets, slots and queue", func(c *Config) any { return c.Limits }},
}

// StartOnly are the settings the running process reads only when it
// starts (cmd/streamgate/cli/serve.go): a reload that changes one is
// accepted and applies everything else, but the change itself waits for
// the next restart. docs/config.md marks every field under one "next
// start". Read-only.
var StartOnly = []RestartSetting{
	{Path: "gateway.drain_timeout", Why: "the shutdown drainer is set up at start"},
	{Path: "telemetry.nats", Why: "the usage event sink is connected at start"},
	{Path: "telemetry.tracing", Why: "the OTLP exporter is set up at start"},
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

package config

import (
	"net"
	"strings"
)

// EnvoyReadsUsage reports whether Envoy can read response usage for c (the
// usage report, docs/limits.md): something reads usage (limits, or
// telemetry.usage), limits.read_usage is not inline, and Envoy reaches the
// ext_proc server at one fixed address (an IP or a unix socket). The
// report arrives as an access log entry on the ext_proc cluster, and a DNS
// name may resolve to several replicas while the report must reach the
// process holding the request. xds installs the reading filters and the
// report log in the listener it publishes by this rule; extproc hands
// requests over by HandsUsageToEnvoy.
func (c *Config) EnvoyReadsUsage() bool {
	switch {
	case c.Limits != nil && c.Limits.ReadUsage == ReadUsageInline:
		return false
	case c.Limits == nil && !c.Telemetry.ReadsUsage():
		return false
	}
	addr := c.ExtProc.EnvoyAddress()
	if strings.HasPrefix(addr, "unix:") {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	return err == nil && net.ParseIP(host) != nil
}

// HandsUsageToEnvoy reports whether ext_proc leaves reading usage to Envoy:
// Envoy can (EnvoyReadsUsage), and either the Envoy in front is known to
// carry the reading filters and the report log — this process publishes
// its listener (servesListener: streamgate run) — or read_usage: envoy
// says the operator installed them.
func (c *Config) HandsUsageToEnvoy(servesListener bool) bool {
	forced := c.Limits != nil && c.Limits.ReadUsage == ReadUsageEnvoy
	return c.EnvoyReadsUsage() && (servesListener || forced)
}

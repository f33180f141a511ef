package config

import (
	"net"
	"strings"
)

// UsageTapOn reports whether c reads usage through the usage tap (the
// second ext_proc filter, contract.UsageFilter): limits read usage with
// it, and Envoy reaches the ext_proc server at one fixed address (an IP or
// a unix socket). A DNS name may resolve to several replicas, and the tap
// stream must reach the process holding the request. xds puts the tap in
// the chain and extproc hands responses over to it by this one rule.
func (c *Config) UsageTapOn() bool {
	if c.Limits == nil || c.Limits.ReadUsage == ReadUsageInline {
		return false
	}
	addr := c.ExtProc.EnvoyAddress()
	if strings.HasPrefix(addr, "unix:") {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	return err == nil && net.ParseIP(host) != nil
}

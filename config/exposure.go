package config

import (
	"fmt"
	"net"
	"strings"
)

// ExposureWarnings names every control listener of c that listens beyond
// this host's loopback: ext_proc (it answers credential checks and takes
// Envoy's access log), xDS (it hands out the whole gateway config), metrics
// and Envoy's admin API (it changes log levels and drains listeners).
// Such a listener is not an error (Envoy may run in another container) but
// must be reachable only by what needs it; see docs/security.md. The
// warnings are sentences with the YAML path, in a fixed order.
func ExposureWarnings(c *Config) []string {
	var out []string
	for _, l := range []struct{ path, addr, who string }{
		{"$.extproc.listen", c.ExtProc.Listen, "only Envoy may reach ext_proc: it answers credential checks"},
		{"$.xds.listen", c.XDS.Listen, "only Envoy may reach xDS: it serves the whole gateway config"},
		{"$.metrics.listen", c.Metrics.Listen, "only probes and Prometheus should reach metrics"},
		{"$.envoy.admin", c.Envoy.Admin, "Envoy's admin API changes log levels and drains listeners"},
	} {
		if !Loopback(l.addr) {
			out = append(out, fmt.Sprintf("%s: %s is reachable beyond this host; %s (restrict it with a NetworkPolicy or firewall, or listen on loopback or a unix socket)", l.path, l.addr, l.who))
		}
	}
	return out
}

// Loopback reports whether addr (host:port or unix:path) accepts
// connections from this host only. An empty host (":9464") listens on
// every interface; an unparsable addr is not loopback.
func Loopback(addr string) bool {
	if strings.HasPrefix(addr, "unix:") {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

package config

import (
	"fmt"
	"time"
)

// Endpoint is one server of a backend.
type Endpoint struct {
	// Address is host:port.
	Address string `yaml:"address"`
	// Weight is the endpoint's share of the backend's traffic (default 1).
	Weight uint32 `yaml:"weight"`
}

// UnmarshalYAML accepts "host:port" or {address: host:port, weight: N}.
func (e *Endpoint) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err == nil {
		*e = Endpoint{Address: s}
		return nil
	}
	type plain Endpoint
	return unmarshal((*plain)(e))
}

// HealthCheck is an active HTTP health check.
type HealthCheck struct {
	// Path probed with GET; default per protocol (/health for openai).
	Path string `yaml:"path"`
	// Interval between probes (default 5s).
	Interval time.Duration `yaml:"interval"`
	// Timeout of one probe (default 1s).
	Timeout time.Duration `yaml:"timeout"`
	// UnhealthyThreshold failed probes mark an endpoint unhealthy (default 2).
	UnhealthyThreshold uint32 `yaml:"unhealthy_threshold"`
	// HealthyThreshold passed probes mark it healthy again (default 1).
	HealthyThreshold uint32 `yaml:"healthy_threshold"`
}

// OutlierDetection ejects endpoints that fail requests.
type OutlierDetection struct {
	// Consecutive5xx failures eject an endpoint (default 5).
	Consecutive5xx uint32 `yaml:"consecutive_5xx"`
	// ConsecutiveGatewayFailure (502/503/504, connect errors) eject it (default 3).
	ConsecutiveGatewayFailure uint32 `yaml:"consecutive_gateway_failure"`
	// BaseEjectionTime is the first ejection's length (default 30s).
	BaseEjectionTime time.Duration `yaml:"base_ejection_time"`
	// MaxEjectionPercent of endpoints may be out at once (default 50).
	MaxEjectionPercent uint32 `yaml:"max_ejection_percent"`
	// Interval between ejection sweeps (default 10s).
	Interval time.Duration `yaml:"interval"`
}

// CircuitBreaker limits in-flight work toward a backend; zero fields keep
// Envoy's defaults (1024 each).
type CircuitBreaker struct {
	// MaxConnections caps the connections to all endpoints.
	MaxConnections uint32 `yaml:"max_connections"`
	// MaxPendingRequests caps requests waiting for a connection.
	MaxPendingRequests uint32 `yaml:"max_pending_requests"`
	// MaxRequests caps requests in flight.
	MaxRequests uint32 `yaml:"max_requests"`
	// MaxRetries caps retries in flight.
	MaxRetries uint32 `yaml:"max_retries"`
}

// ConnectionPool tunes upstream connections.
type ConnectionPool struct {
	// IdleTimeout closes connections unused this long (default 1h).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxRequestsPerConnection recycles connections (0: unlimited).
	MaxRequestsPerConnection uint32 `yaml:"max_requests_per_connection"`
}

// DefaultHealthPath is the health-check path for a protocol.
func DefaultHealthPath(p Protocol) string {
	switch p {
	case ProtocolOllama:
		return "/api/version"
	case ProtocolKServe:
		return "/v2/health/ready"
	}
	return "/health"
}

func (b *Backend) applyDefaults() {
	b.applyGRPCDefaults()
	if b.Picking != nil {
		b.Picking.applyDefaults()
	}
	if b.ConnectTimeout == 0 {
		b.ConnectTimeout = DefaultConnectTimeout
	}
	for i := range b.Endpoints {
		if b.Endpoints[i].Weight == 0 {
			b.Endpoints[i].Weight = 1
		}
	}
	if h := b.HealthCheck; h != nil {
		setString(&h.Path, DefaultHealthPath(b.Protocol))
		setDuration(&h.Interval, 5*time.Second)
		setDuration(&h.Timeout, time.Second)
		setUint(&h.UnhealthyThreshold, 2)
		setUint(&h.HealthyThreshold, 1)
	}
	if o := b.OutlierDetection; o != nil {
		setUint(&o.Consecutive5xx, 5)
		setUint(&o.ConsecutiveGatewayFailure, 3)
		setDuration(&o.BaseEjectionTime, 30*time.Second)
		setUint(&o.MaxEjectionPercent, 50)
		setDuration(&o.Interval, 10*time.Second)
	}
}

// validateBackendKnobs checks the optional parts of backend i.
func (v *validator) validateBackendKnobs(i int, b *Backend) {
	p := fmt.Sprintf("$.backends[%d]", i)
	if h := b.HealthCheck; h != nil {
		if len(h.Path) == 0 || h.Path[0] != '/' {
			v.at(p+".health_check.path", "backend %q: health_check.path must start with /", b.Name)
		}
		if h.Timeout >= h.Interval {
			v.at(p+".health_check.timeout", "backend %q: health_check.timeout (%v) must be shorter than its interval (%v)", b.Name, h.Timeout, h.Interval)
		}
	}
	v.validateGRPCMethods(p, b)
	v.validateQueryParams(p, b)
	if b.ResponsesAPI && b.Protocol != ProtocolOpenAI {
		v.at(p+".responses_api", "backend %q: responses_api applies to the openai protocol only, not %s", b.Name, b.Protocol)
	}
	v.validatePicking(p, b)
	if o := b.OutlierDetection; o != nil && o.MaxEjectionPercent > 100 {
		v.at(p+".outlier_detection.max_ejection_percent", "backend %q: max_ejection_percent is a percentage (0-100)", b.Name)
	}
}

func setDuration(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

func setUint(u *uint32, def uint32) {
	if *u == 0 {
		*u = def
	}
}

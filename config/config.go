// Package config holds Streamgate's single YAML schema: where the gateway
// listens, which model backends exist and which public model names map to
// them. Loading runs in steps: decode strictly, apply defaults, validate the
// whole file, and report every problem at once with its file and line.
package config

import (
	"time"
)

// Defaults applied by Load when a field is left empty.
const (
	DefaultGatewayListen     = "0.0.0.0:10000"
	DefaultExtProcListen     = "127.0.0.1:50051"
	DefaultXDSListen         = "127.0.0.1:18001"
	DefaultMetricsListen     = "127.0.0.1:9464"
	DefaultEnvoyAdmin        = "127.0.0.1:9901"
	DefaultNodeID            = "streamgate"
	DefaultMaxBodyBytes      = 8 << 20
	DefaultStreamIdleTimeout = 5 * time.Minute
	DefaultConnectTimeout    = 5 * time.Second
	DefaultMessageTimeout    = 2 * time.Second
)

// Protocol names a backend's wire API.
type Protocol string

// Backend protocols Streamgate knows.
const (
	ProtocolOpenAI    Protocol = "openai"
	ProtocolAnthropic Protocol = "anthropic"
	ProtocolOllama    Protocol = "ollama"
	ProtocolKServe    Protocol = "kserve-v2"
)

// Config is one decoded and validated streamgate.yaml. It is immutable once
// returned by Load or Parse and safe to share between goroutines.
type Config struct {
	Gateway  Gateway   `yaml:"gateway"`
	ExtProc  ExtProc   `yaml:"extproc"`
	XDS      XDS       `yaml:"xds"`
	Metrics  Metrics   `yaml:"metrics"`
	Envoy    Envoy     `yaml:"envoy"`
	Backends []Backend `yaml:"backends"`
	Models   []Model   `yaml:"models"`

	// Source is the file the config was read from, for messages.
	Source string `yaml:"-"`
}

// Gateway is the client-facing Envoy listener.
type Gateway struct {
	// Listen is the host:port clients connect to (default 0.0.0.0:10000).
	Listen string `yaml:"listen"`
	// MaxRequestBodyBytes caps a request body; larger bodies get 413 (default 8 MiB).
	MaxRequestBodyBytes int64 `yaml:"max_request_body_bytes"`
	// StreamIdleTimeout ends a stream that moves no bytes for this long (default 5m).
	// There is no overall request timeout: token streams may run for minutes.
	StreamIdleTimeout time.Duration `yaml:"stream_idle_timeout"`
}

// ExtProc is the ext_proc gRPC server Envoy calls for every request.
type ExtProc struct {
	// Listen is host:port or unix:/path (default 127.0.0.1:50051).
	Listen string `yaml:"listen"`
	// MessageTimeout bounds each ext_proc exchange as Envoy sees it (default 2s).
	MessageTimeout time.Duration `yaml:"message_timeout"`
}

// XDS is the ADS server Envoy takes its listeners and clusters from.
type XDS struct {
	// Listen is host:port (default 127.0.0.1:18001).
	Listen string `yaml:"listen"`
}

// Metrics is the HTTP server for /metrics, /healthz and /readyz.
type Metrics struct {
	// Listen is host:port (default 127.0.0.1:9464).
	Listen string `yaml:"listen"`
}

// Envoy describes the Envoy that `streamgate run` starts and the node the
// xDS server publishes to.
type Envoy struct {
	// Admin is Envoy's admin address; keep it on loopback (default 127.0.0.1:9901).
	Admin string `yaml:"admin"`
	// NodeID is the xDS node id Envoy announces (default "streamgate").
	NodeID string `yaml:"node_id"`
}

// Backend is one model server (or a pool of identical ones).
type Backend struct {
	// Name is unique and becomes the Envoy cluster name.
	Name string `yaml:"name"`
	// Protocol is the backend's API, e.g. "openai".
	Protocol Protocol `yaml:"protocol"`
	// Endpoints are host:port addresses of the servers.
	Endpoints []string `yaml:"endpoints"`
	// TLS, when set, makes Envoy speak TLS to the endpoints.
	TLS *TLS `yaml:"tls"`
	// ConnectTimeout bounds the TCP (and TLS) connect (default 5s).
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
}

// TLS configures upstream TLS for a backend.
type TLS struct {
	// SNI is the server name sent; empty means the first endpoint's host.
	SNI string `yaml:"sni"`
	// CAFile is a PEM bundle to verify the server; empty means no verification.
	CAFile string `yaml:"ca_file"`
}

// Model maps a public model name to a backend.
type Model struct {
	// Name is what clients put in the request's "model" field.
	Name string `yaml:"name"`
	// Backend is the name of the backend that serves it.
	Backend string `yaml:"backend"`
	// UpstreamModel is the model name the backend expects (default: Name).
	UpstreamModel string `yaml:"upstream_model"`
	// DefaultMaxTokens is the output cap sent when a client sends none and
	// the backend requires one (Anthropic; default 4096 there, else unused).
	DefaultMaxTokens int `yaml:"default_max_tokens"`
}

// Backend returns the backend with the given name, or nil.
func (c *Config) Backend(name string) *Backend {
	for i := range c.Backends {
		if c.Backends[i].Name == name {
			return &c.Backends[i]
		}
	}
	return nil
}

func (c *Config) applyDefaults() {
	setString(&c.Gateway.Listen, DefaultGatewayListen)
	setString(&c.ExtProc.Listen, DefaultExtProcListen)
	setString(&c.XDS.Listen, DefaultXDSListen)
	setString(&c.Metrics.Listen, DefaultMetricsListen)
	setString(&c.Envoy.Admin, DefaultEnvoyAdmin)
	setString(&c.Envoy.NodeID, DefaultNodeID)
	if c.Gateway.MaxRequestBodyBytes == 0 {
		c.Gateway.MaxRequestBodyBytes = DefaultMaxBodyBytes
	}
	if c.Gateway.StreamIdleTimeout == 0 {
		c.Gateway.StreamIdleTimeout = DefaultStreamIdleTimeout
	}
	if c.ExtProc.MessageTimeout == 0 {
		c.ExtProc.MessageTimeout = DefaultMessageTimeout
	}
	for i := range c.Backends {
		if c.Backends[i].ConnectTimeout == 0 {
			c.Backends[i].ConnectTimeout = DefaultConnectTimeout
		}
	}
	for i := range c.Models {
		setString(&c.Models[i].UpstreamModel, c.Models[i].Name)
	}
	c.applyProtocolDefaults()
}

func setString(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

// Package config holds Streamgate's single YAML schema: where the gateway
// listens, which model backends exist and which public model names map to
// them. Loading runs in steps: decode strictly, apply defaults, validate the
// whole file, and report every problem at once with its file and line.
package config

import (
	"time"
)

// DefaultMaxUploadBytes is the default gateway.max_upload_bytes: OpenAI's
// 25 MiB audio file limit plus 1 MiB for the form's other fields.
const DefaultMaxUploadBytes = 26 << 20

// Defaults applied by Load when a field is left empty.
const (
	DefaultGatewayListen     = "0.0.0.0:10000"
	DefaultExtProcListen     = "127.0.0.1:50051"
	DefaultXDSListen         = "127.0.0.1:18001"
	DefaultMetricsListen     = "127.0.0.1:9464"
	DefaultEnvoyAdmin        = "127.0.0.1:9901"
	DefaultNodeID            = "streamgate"
	DefaultMaxBodyBytes      = 8 << 20
	DefaultMaxJSONDepth      = 128
	MaxMaxJSONDepth          = 10000
	DefaultStreamIdleTimeout = 5 * time.Minute
	DefaultConnectTimeout    = 5 * time.Second
	DefaultMessageTimeout    = 2 * time.Second
	DefaultDrainTimeout      = 30 * time.Second
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
	// Gateway is the client-facing Envoy listener and its bounds.
	Gateway Gateway `yaml:"gateway"`
	// ExtProc is the ext_proc gRPC server Envoy calls for every request.
	ExtProc ExtProc `yaml:"extproc"`
	// XDS is the server Envoy takes its listeners and clusters from.
	XDS XDS `yaml:"xds"`
	// Metrics is the HTTP server for /metrics, /healthz and /readyz.
	Metrics Metrics `yaml:"metrics"`
	// Envoy is the Envoy that `streamgate run` starts and the xDS node.
	Envoy Envoy `yaml:"envoy"`
	// Backends are the model servers (at least one).
	Backends []Backend `yaml:"backends"`
	// Models map the public model names clients use to backends.
	Models []Model `yaml:"models"`
	// Services mount backends of protocol http (services that are not
	// model APIs) on path prefixes, with per-operation policy (service.go).
	Services []Service `yaml:"services"`
	// Auth, when set, requires credentials on every request (see auth.go).
	Auth *Auth `yaml:"auth"`
	// Limits throttles tenants and backends; nil means no limits.
	Limits *Limits `yaml:"limits"`
	// Telemetry configures metrics labels, usage reading, prices, usage
	// events and tracing (see telemetry.go).
	Telemetry Telemetry `yaml:"telemetry"`
	// Bridge, when set, consumes inference requests from event streams
	// (NATS JetStream, Kafka) and publishes their results (bridge.go,
	// docs/streams.md).
	Bridge *Bridge `yaml:"bridge"`
	// Batch, when set, serves the OpenAI Batch API (/v1/files,
	// /v1/batches) from `streamgate run` (batch.go, docs/batch.md).
	Batch *Batch `yaml:"batch"`

	// Source is the file the config was read from, for messages.
	Source string `yaml:"-"`
	// digest is the SHA-256 of the bytes it was parsed from.
	digest []byte
}

// Gateway is the client-facing Envoy listener.
type Gateway struct {
	// Listen is the host:port clients connect to (default 0.0.0.0:10000).
	Listen string `yaml:"listen"`
	// MaxRequestBodyBytes caps a request body, larger bodies get 413, and is
	// the whole stream's buffer limit in Envoy: a client that stops reading
	// a response may leave up to about this much of it there (default 8 MiB).
	MaxRequestBodyBytes int64 `yaml:"max_request_body_bytes"`
	// MaxUploadBytes caps the multipart/form-data bodies of the upload
	// endpoints (POST /v1/audio/transcriptions, /v1/audio/translations and
	// /v1/images/edits), files included, instead of max_request_body_bytes, so files can be
	// larger than JSON bodies without raising the cap of every endpoint;
	// larger uploads get 413 (default 26 MiB: OpenAI's 25 MiB file limit
	// plus the form); set below max_request_body_bytes, uploads keep that
	// cap instead (UploadCap). Envoy buffers the whole body and the
	// ext_proc reads it, so each upload in flight holds up to this much
	// memory in each.
	MaxUploadBytes int64 `yaml:"max_upload_bytes"`
	// MaxJSONDepth caps how deeply a request body's arrays and objects may
	// nest; deeper bodies get 400 before any JSON parser sees them
	// (default 128, at most 10000).
	MaxJSONDepth int `yaml:"max_json_depth"`
	// StreamIdleTimeout ends a stream that moves no bytes for this long (default 5m).
	// There is no overall request timeout: token streams may run for minutes.
	StreamIdleTimeout time.Duration `yaml:"stream_idle_timeout"`
	// FirstByteTimeout bounds how long a backend may take to start its
	// response (send its status and headers) to a streaming request, for
	// every backend without its own first_byte_timeout (default 0: no
	// bound but stream_idle_timeout). A backend that misses it is
	// abandoned; the request moves to the model's next fallback, and with
	// none left the client gets 504 (deadline.go).
	FirstByteTimeout time.Duration `yaml:"first_byte_timeout"`
	// RetryBudgetPercent caps the failover retries of a chain running at
	// once, as a share of its first backend's circuit_breaker.max_requests
	// (Envoy's default 1024), at least 10 (default 100: during an outage
	// every request may move on once). Envoy counts no active requests on
	// a chain's aggregate cluster, so the cap is of capacity, not live load.
	RetryBudgetPercent float64 `yaml:"retry_budget_percent"`
	// AccessLog is where Envoy writes one JSON line per request: a file
	// path, /dev/stdout (default) or "off". Under `streamgate run` Envoy's
	// stdout is Streamgate's stdout (its own log stays on stderr).
	AccessLog string `yaml:"access_log"`
	// DrainTimeout bounds a graceful shutdown (SIGTERM): new requests get
	// 503 at once, open streams get this long to finish (default 30s); a
	// shutdown uses the value of the config last applied.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// MaxConcurrentStreams caps the HTTP/2 streams of one client
	// connection (default 100); see edge.go for the other bounds.
	MaxConcurrentStreams int `yaml:"max_concurrent_streams"`
	// RequestHeadersTimeout bounds the arrival of a request's headers (default 10s).
	RequestHeadersTimeout time.Duration `yaml:"request_headers_timeout"`
	// RequestBodyTimeout bounds the arrival of a whole request, body
	// included (default 1m); it stops once the request is complete or the
	// response begins, so it never cuts a token stream.
	RequestBodyTimeout time.Duration `yaml:"request_body_timeout"`
	// TrustRequestID keeps the x-request-id a request arrives with (default
	// false: Envoy generates a fresh id for every request). Set it only
	// when every client is a proxy that sets the id itself.
	TrustRequestID bool `yaml:"trust_request_id"`
	// PriorityHeader lets clients of an open gateway (no auth) set a
	// request's priority with the x-streamgate-priority header (default
	// false: the header is stripped and ignored). With auth on, each
	// tenant's priority_header decides instead.
	PriorityHeader bool `yaml:"priority_header"`
	// TLS, when set, terminates TLS (and optionally verifies client
	// certificates) on the gateway listener; unset, the listener speaks
	// plain HTTP/1.1 and h2c.
	TLS *ListenerTLS `yaml:"tls"`
}

// ExtProc is the ext_proc gRPC server Envoy calls for every request.
type ExtProc struct {
	// Listen is host:port or unix:/path (default 127.0.0.1:50051). When
	// listen and address are both unset and `streamgate run` starts Envoy,
	// ext_proc listens on a unix socket in a private directory instead
	// (WithLocalExtProc).
	Listen string `yaml:"listen"`
	// Address is where Envoy reaches the ext_proc server when that is not
	// listen, e.g. when Streamgate listens on 0.0.0.0 in a container and
	// Envoy runs in another: host:port (a DNS name such as a Kubernetes
	// Service works) or unix:/path. Empty means listen.
	Address string `yaml:"address"`
	// MessageTimeout bounds each ext_proc exchange as Envoy sees it (default 2s).
	MessageTimeout time.Duration `yaml:"message_timeout"`

	// listenDefaulted is set when Listen was left empty and got
	// DefaultExtProcListen (see WithLocalExtProc).
	listenDefaulted bool
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

// EnvoyAddress is the address Envoy dials for ext_proc: Address, else Listen.
func (e ExtProc) EnvoyAddress() string {
	if e.Address != "" {
		return e.Address
	}
	return e.Listen
}

// Envoy describes the Envoy that `streamgate run` starts and the node the
// xDS server publishes to.
type Envoy struct {
	// Admin is Envoy's admin address; keep it on loopback (default 127.0.0.1:9901).
	Admin string `yaml:"admin"`
	// NodeID is the xDS node id Envoy announces (default "streamgate").
	NodeID string `yaml:"node_id"`
	// MaxHeapBytes is the heap the overload manager of the Envoy that
	// `streamgate run` starts measures against (default 1 GiB): near it
	// Envoy resets the largest streams, then stops taking requests.
	MaxHeapBytes int64 `yaml:"max_heap_bytes"`
}

// Backend is one model server (or a pool of identical ones).
type Backend struct {
	// Name is unique and becomes the Envoy cluster name.
	Name string `yaml:"name"`
	// Protocol is the backend's API: openai, anthropic, ollama, kserve-v2,
	// kserve-v2-grpc or bedrock.
	Protocol Protocol `yaml:"protocol"`
	// Endpoints are the servers: "host:port" or {address, weight}.
	Endpoints []Endpoint `yaml:"endpoints"`
	// TLS, when set, makes Envoy speak TLS to the endpoints.
	TLS *TLS `yaml:"tls"`
	// ConnectTimeout bounds the TCP (and TLS) connect (default 5s).
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// FirstByteTimeout bounds how long this backend may take to start its
	// response to a streaming request, counted from when Envoy has sent it
	// the whole request; it overrides gateway.first_byte_timeout (0: the
	// gateway's). As the first backend of a model's chain it bounds every
	// try of the chain (deadline.go).
	FirstByteTimeout time.Duration `yaml:"first_byte_timeout"`
	// HTTP2 makes Envoy speak HTTP/2 to the backend (gRPC backends need it).
	HTTP2 bool `yaml:"http2"`
	// HealthCheck, when set, has Envoy probe every endpoint.
	HealthCheck *HealthCheck `yaml:"health_check"`
	// OutlierDetection, when set, ejects endpoints that keep failing.
	OutlierDetection *OutlierDetection `yaml:"outlier_detection"`
	// CircuitBreaker caps what Envoy sends the backend at once.
	CircuitBreaker *CircuitBreaker `yaml:"circuit_breaker"`
	// ConnectionPool tunes upstream connection reuse.
	ConnectionPool *ConnectionPool `yaml:"connection_pool"`
	// Credential, when set, is injected into every request sent to this backend.
	Credential *Credential `yaml:"credential"`
	// AWS signs every request to a bedrock backend with SigV4 (required
	// for that protocol, refused for the others).
	AWS *AWS `yaml:"aws"`
	// Azure makes an openai backend an Azure OpenAI resource: deployment
	// paths, api-version, api-key or Entra ID tokens.
	Azure *Azure `yaml:"azure"`
	// Vertex makes a gemini backend a Vertex AI endpoint, and an anthropic
	// backend Claude on Vertex AI (rawPredict / streamRawPredict): project
	// and location paths, Google OAuth2 tokens.
	Vertex *Vertex `yaml:"vertex"`
	// OpenAI sets the OpenAI-Organization and OpenAI-Project headers of
	// an OpenAI platform backend.
	OpenAI *OpenAI `yaml:"openai"`
	// GRPCMethods are the gRPC methods of inference.GRPCInferenceService a
	// kserve-v2-grpc backend accepts beyond the default inference and
	// metadata ones (GRPCDefaultMethods), e.g. RepositoryModelLoad; names
	// from GRPCKnownMethods.
	GRPCMethods []string `yaml:"grpc_methods"`
	// QueryParams names the query parameters a request may pass to this
	// backend (e.g. [api-version] for Azure OpenAI). Every other parameter
	// is removed from the path before the request goes upstream; the
	// default is none.
	QueryParams []string `yaml:"query_params"`
	// ResponsesAPI says the backend (protocol openai) serves the OpenAI
	// Responses API itself, as vLLM does: /v1/responses requests then pass
	// through untranslated, previous_response_id and store included. When
	// false (the default) they are translated to Chat Completions,
	// statelessly.
	ResponsesAPI bool `yaml:"responses_api"`
	// Picking, when set, has Streamgate pick the endpoint per request from
	// the model servers' load, prefix cache and adapters (picking.go).
	Picking *Picking `yaml:"picking"`
}

// TLS configures upstream TLS for a backend.
type TLS struct {
	// SNI is the server name sent; empty means the first endpoint's host.
	SNI string `yaml:"sni"`
	// CAFile is a PEM bundle to verify the server against; empty means
	// the system's CA bundle. The certificate must name ServerName.
	CAFile string `yaml:"ca_file"`
	// InsecureSkipVerify accepts any certificate (warned at start and by
	// validate); for tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`

	// systemCA is the system bundle found at load when CAFile is empty.
	systemCA string
}

// Model maps a public model name (the stable name clients use) to one or
// more versions, each served by a backend.
type Model struct {
	// Name is what clients put in the request's "model" field.
	Name string `yaml:"name"`
	// Backend (with upstream_model) is the short form of a single version
	// named "default"; use versions instead for several.
	Backend string `yaml:"backend"`
	// UpstreamModel is the model name the backend expects (default: Name).
	UpstreamModel string `yaml:"upstream_model"`
	// Versions split traffic by weight (canary, blue-green).
	Versions []Version `yaml:"versions"`
	// AllowPin lets a request choose a version with the
	// x-streamgate-model-version header, whatever the weights.
	AllowPin bool `yaml:"allow_pin"`
	// Fallbacks are backends tried in order when the chosen version's
	// backend fails before the first response byte (connect failure, reset,
	// 5xx or 429). They receive the version's upstream model name, or
	// their entry in fallback_models. A fallback may speak another
	// protocol (openai, anthropic, bedrock, gemini among each other): each
	// attempt is then translated and authorized for its own backend
	// (docs/providers.md, "Fallbacks across providers").
	Fallbacks []string `yaml:"fallbacks"`
	// FallbackModels names the model a fallback backend expects when it is
	// not the version's upstream model, e.g. {bedrock:
	// anthropic.claude-3-haiku-20240307-v1:0}: backend name -> model.
	FallbackModels map[string]string `yaml:"fallback_models"`
	// DefaultMaxTokens is the output cap sent when a client sends none and
	// the backend requires one (Anthropic and Bedrock; default 4096 there,
	// else unused).
	DefaultMaxTokens int `yaml:"default_max_tokens"`
	// Shaping adjusts this model's requests before they reach a backend.
	Shaping *Shaping `yaml:"shaping"`
	// Endpoints are the API paths the model may be called on, e.g.
	// [/v1/chat/completions] for a chat-only model; a request on another
	// gets 404 model_endpoint_not_supported. Default (empty): every
	// endpoint its backends' protocol serves, as is or translated.
	// GET /v1/models lists the result under streamgate.endpoints.
	Endpoints []string `yaml:"endpoints"`

	// shortForm is set when Versions was made from Backend.
	shortForm bool
}

// Version is one deployment of a model.
type Version struct {
	// Name is unique within the model and reported to clients in the
	// x-streamgate-model-version response header.
	Name string `yaml:"name"`
	// Backend serves this version.
	Backend string `yaml:"backend"`
	// UpstreamModel is the model name the backend expects (default: the model's name).
	UpstreamModel string `yaml:"upstream_model"`
	// Weight is this version's share of unpinned traffic; 0 (the default)
	// means pinned requests only. Weights are relative; the short form
	// (a model's backend) has weight 1.
	Weight uint32 `yaml:"weight"`
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

// UploadCap is the body cap of the upload endpoints: max_upload_bytes, or
// max_request_body_bytes if that is larger (an upload is never capped
// below a JSON body). Envoy's upload routes and the ext_proc both read it.
func (g *Gateway) UploadCap() int64 { return max(g.MaxUploadBytes, g.MaxRequestBodyBytes) }

func (c *Config) applyDefaults() {
	setString(&c.Gateway.Listen, DefaultGatewayListen)
	c.ExtProc.listenDefaulted = c.ExtProc.Listen == ""
	setString(&c.ExtProc.Listen, DefaultExtProcListen)
	setString(&c.XDS.Listen, DefaultXDSListen)
	setString(&c.Metrics.Listen, DefaultMetricsListen)
	setString(&c.Envoy.Admin, DefaultEnvoyAdmin)
	setString(&c.Envoy.NodeID, DefaultNodeID)
	if c.Gateway.MaxRequestBodyBytes == 0 {
		c.Gateway.MaxRequestBodyBytes = DefaultMaxBodyBytes
	}
	if c.Gateway.MaxUploadBytes == 0 {
		c.Gateway.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if c.Gateway.MaxJSONDepth == 0 {
		c.Gateway.MaxJSONDepth = DefaultMaxJSONDepth
	}
	setString(&c.Gateway.AccessLog, "/dev/stdout")
	if c.Gateway.RetryBudgetPercent == 0 {
		c.Gateway.RetryBudgetPercent = 100
	}
	if c.Gateway.StreamIdleTimeout == 0 {
		c.Gateway.StreamIdleTimeout = DefaultStreamIdleTimeout
	}
	if c.Gateway.DrainTimeout == 0 {
		c.Gateway.DrainTimeout = DefaultDrainTimeout
	}
	if c.ExtProc.MessageTimeout == 0 {
		c.ExtProc.MessageTimeout = DefaultMessageTimeout
	}
	c.Batch.mount(c) // batch: its backend and services, defaulted below
	for i := range c.Backends {
		c.Backends[i].applyDefaults()
	}
	for i := range c.Services {
		c.Services[i].applyDefaults()
	}
	for i := range c.Models {
		m := &c.Models[i]
		if len(m.Versions) == 0 && m.Backend != "" {
			m.Versions = []Version{{Name: "default", Backend: m.Backend, UpstreamModel: m.UpstreamModel, Weight: 1}}
			m.shortForm = true
		}
		setString(&m.UpstreamModel, m.Name)
		for j := range m.Versions {
			setString(&m.Versions[j].UpstreamModel, m.Name)
		}
	}
	if c.Auth != nil {
		c.Auth.applyDefaults()
	}
	c.applyEdgeDefaults()
	c.Limits.applyDefaults()
	c.Telemetry.applyDefaults()
	c.Bridge.applyDefaults(c.Gateway.Listen)
	c.Batch.applyDefaults(c.Gateway.Listen)
	c.applyProtocolDefaults()
}

func setString(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

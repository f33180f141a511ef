package config

import (
	"math"
	"sort"
	"strings"
)

// Defaults of the telemetry section.
const (
	DefaultNATSSubject   = "streamgate.usage"
	DefaultNATSBuffer    = 4096
	DefaultTraceSampling = 1.0
	DefaultTraceService  = "streamgate"
	telemetryPricesLimit = 1e6
)

// Telemetry is the telemetry section: what Streamgate measures about each
// request and where it reports it. The zero value labels metrics by tenant
// and reads responses only where limits need them.
type Telemetry struct {
	// TenantLabel puts the tenant on per-request metrics (default true).
	// Turn it off when tenants are many: label cardinality is bounded by
	// the tenant count otherwise.
	TenantLabel *bool `yaml:"tenant_label"`
	// Usage reads every response's usage (token counts, time to first
	// token) as it passes (default false). It costs one ext_proc round trip
	// per response body chunk, which pass-through streams otherwise never
	// pay; off, only requests the limits meter are read.
	Usage *bool `yaml:"usage"`
	// Prices are per public model: USD per million tokens, and per image
	// for the image endpoints.
	Prices map[string]Price `yaml:"prices"`
	// NATS, when set, publishes one usage event per finished request.
	NATS *NATS `yaml:"nats"`
	// Tracing, when set, exports OpenTelemetry spans over OTLP.
	Tracing *Tracing `yaml:"tracing"`
}

// Price is what one model's tokens cost.
type Price struct {
	// InputPerMillion is the USD price of a million input tokens.
	InputPerMillion float64 `yaml:"input_per_million"`
	// OutputPerMillion is the USD price of a million output tokens.
	OutputPerMillion float64 `yaml:"output_per_million"`
	// PerImage is the USD price of one image from /v1/images/generations
	// or /v1/images/edits, keyed by its size ("1024x1024", or "auto" for
	// an image whose size neither the request nor the response states),
	// optionally with its quality after a slash ("1024x1024/high"), which
	// wins over the size alone. An image whose size has no price costs
	// nothing here. Added to the token prices, which models billed per
	// image usually leave at zero. Nil: images are priced by tokens only.
	PerImage map[string]float64 `yaml:"per_image"`
}

// NATS is where usage events go.
type NATS struct {
	// URL is the NATS server, e.g. nats://127.0.0.1:4222.
	URL string `yaml:"url"`
	// Subject events are published on (default streamgate.usage).
	Subject string `yaml:"subject"`
	// JetStream publishes with acknowledgement to a stream that must
	// capture subject; off, events are plain NATS messages.
	JetStream bool `yaml:"jetstream"`
	// Buffer bounds events waiting to be sent; when full, new events are
	// dropped and counted, never waited for (default 4096).
	Buffer int `yaml:"buffer"`
}

// Tracing exports request spans with OTLP over gRPC.
type Tracing struct {
	// Endpoint is the OTLP gRPC collector host:port.
	Endpoint string `yaml:"endpoint"`
	// Insecure sends without TLS.
	Insecure bool `yaml:"insecure"`
	// Sampling is the share of requests traced, 0..1 (default 1).
	Sampling *float64 `yaml:"sampling"`
}

// TenantLabels reports whether metrics carry a tenant label.
func (t Telemetry) TenantLabels() bool { return t.TenantLabel == nil || *t.TenantLabel }

// ReadsUsage reports whether every response's usage is read.
func (t Telemetry) ReadsUsage() bool { return t.Usage != nil && *t.Usage }

// SampleRatio returns the tracing sampling ratio.
func (t *Tracing) SampleRatio() float64 {
	if t == nil || t.Sampling == nil {
		return DefaultTraceSampling
	}
	return *t.Sampling
}

func (t *Telemetry) applyDefaults() {
	if t.NATS != nil {
		setString(&t.NATS.Subject, DefaultNATSSubject)
		if t.NATS.Buffer == 0 {
			t.NATS.Buffer = DefaultNATSBuffer
		}
	}
}

func (v *validator) validateTelemetry(t *Telemetry, models map[string]int) {
	names := make([]string, 0, len(t.Prices))
	for m := range t.Prices {
		names = append(names, m)
	}
	sort.Strings(names)
	for _, m := range names {
		p := t.Prices[m]
		path := "$.telemetry.prices." + m
		if _, ok := models[m]; !ok {
			v.at(path, "price for model %q: no such model is defined under models", m)
		}
		for _, x := range []float64{p.InputPerMillion, p.OutputPerMillion} {
			if x < 0 || x > telemetryPricesLimit || math.IsNaN(x) {
				v.at(path, "price for model %q must be between 0 and %g USD per million tokens", m, float64(telemetryPricesLimit))
				break
			}
		}
		v.validateImagePrices(path+".per_image", m, p.PerImage)
	}
	if n := t.NATS; n != nil {
		if !strings.HasPrefix(n.URL, "nats://") && !strings.HasPrefix(n.URL, "tls://") {
			v.at("$.telemetry.nats.url", "nats url %q must start with nats:// or tls://", n.URL)
		}
		if strings.ContainsAny(n.Subject, " \t*>") {
			v.at("$.telemetry.nats.subject", "nats subject %q must be a literal subject (no spaces or wildcards)", n.Subject)
		}
		if n.Buffer < 0 {
			v.at("$.telemetry.nats.buffer", "nats buffer must not be negative")
		}
	}
	if tr := t.Tracing; tr != nil {
		v.hostPort("$.telemetry.tracing.endpoint", tr.Endpoint)
		if r := tr.SampleRatio(); r < 0 || r > 1 {
			v.at("$.telemetry.tracing.sampling", "sampling %g must be between 0 and 1", r)
		}
	}
}

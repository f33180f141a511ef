package config

import "strings"

// DefaultAnthropicMaxTokens is the max_tokens sent to an Anthropic backend
// for a model without default_max_tokens when the client sent none: the
// Messages API requires the field.
const DefaultAnthropicMaxTokens = 4096

// protocols lists the backend protocols in the order messages name them.
var protocols = []Protocol{ProtocolOpenAI, ProtocolAnthropic, ProtocolOllama, ProtocolKServe, ProtocolKServeV2GRPC, ProtocolBedrock, ProtocolGemini, ProtocolHTTP}

// Known reports whether p is a backend protocol Streamgate speaks.
func (p Protocol) Known() bool {
	for _, k := range protocols {
		if p == k {
			return true
		}
	}
	return false
}

func knownProtocols() string {
	names := make([]string, len(protocols))
	for i, p := range protocols {
		names[i] = string(p)
	}
	return strings.Join(names, ", ")
}

// applyProtocolDefaults gives models served by an Anthropic or Bedrock
// backend (in any version) their default output cap.
func (c *Config) applyProtocolDefaults() {
	for i := range c.Models {
		m := &c.Models[i]
		for _, ver := range m.Versions {
			if b := c.Backend(ver.Backend); b != nil && (b.Protocol == ProtocolAnthropic || b.Protocol == ProtocolBedrock) && m.DefaultMaxTokens == 0 {
				m.DefaultMaxTokens = DefaultAnthropicMaxTokens
			}
		}
	}
}

// sameProtocol refuses a fallback backend speaking another protocol than a
// version it backs up: the request body was translated for the version's
// backend before Envoy picked the fallback.
func (v *validator) sameProtocol(fp string, m Model, fallback string) {
	fb := v.cfg.Backend(fallback)
	if fb == nil {
		return
	}
	for _, ver := range m.Versions {
		if b := v.cfg.Backend(ver.Backend); b != nil && b.Protocol != fb.Protocol {
			v.at(fp, "model %q falls back from backend %q (%s) to %q (%s); failover needs backends of one protocol", m.Name, ver.Backend, b.Protocol, fallback, fb.Protocol)
			return
		}
	}
}

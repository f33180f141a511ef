package config

import (
	"maps"
	"slices"
	"strings"
)

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
// backend (in any version, or as a fallback) their default output cap.
func (c *Config) applyProtocolDefaults() {
	for i := range c.Models {
		m := &c.Models[i]
		names := m.Fallbacks
		for _, ver := range m.Versions {
			names = append(names[:len(names):len(names)], ver.Backend)
		}
		for _, name := range names {
			if b := c.Backend(name); b != nil && (b.Protocol == ProtocolAnthropic || b.Protocol == ProtocolBedrock) && m.DefaultMaxTokens == 0 {
				m.DefaultMaxTokens = DefaultAnthropicMaxTokens
			}
		}
	}
}

// CrossProtocols are the backend protocols a failover chain may mix: the
// chat APIs every client API Streamgate serves for chat (Chat Completions,
// Messages, Responses) is translated to and from.
var CrossProtocols = []Protocol{ProtocolOpenAI, ProtocolAnthropic, ProtocolBedrock, ProtocolGemini}

// MixesProtocols reports whether the failover chain of a version served by
// backend, with fallbacks, has backends of more than one protocol (Claude
// on Vertex AI's envelope counting as its own). Such a
// request is translated and authorized per attempt, by the ext_proc server
// running as an upstream filter of each backend's cross cluster.
func (c *Config) MixesProtocols(backend string, fallbacks []string) bool {
	b := c.Backend(backend)
	if b == nil {
		return false
	}
	for _, name := range fallbacks {
		if fb := c.Backend(name); fb != nil && (fb.Protocol != b.Protocol || fb.ClaudeOnVertex() != b.ClaudeOnVertex()) {
			return true
		}
	}
	return false
}

// crossFallback checks a fallback backend against the versions it backs
// up: another protocol is allowed among CrossProtocols, translated per
// attempt; endpoint picking chooses the endpoint of one backend before
// Envoy tries the chain, so no backend of a mixed chain may use it.
func (v *validator) crossFallback(fp string, m Model, fallback string) {
	fb := v.cfg.Backend(fallback)
	if fb == nil {
		return
	}
	for _, ver := range m.Versions {
		b := v.cfg.Backend(ver.Backend)
		if b == nil || !v.cfg.MixesProtocols(ver.Backend, m.Fallbacks) {
			continue
		}
		if b.Protocol != fb.Protocol && (!slices.Contains(CrossProtocols, b.Protocol) || !slices.Contains(CrossProtocols, fb.Protocol)) {
			v.at(fp, "model %q falls back from backend %q (%s) to %q (%s); failover across protocols works between openai, anthropic, bedrock and gemini backends only", m.Name, ver.Backend, b.Protocol, fallback, fb.Protocol)
			return
		}
		for _, x := range []*Backend{b, fb} {
			if x.Picking != nil {
				v.at(fp, "model %q falls back from backend %q to %q across protocols; backend %q uses picking, which a failover chain mixing protocols cannot use", m.Name, ver.Backend, fallback, x.Name)
				return
			}
		}
	}
}

// fallbackModels checks that fallback_models names fallbacks of m only.
func (v *validator) fallbackModels(p string, m Model) {
	for _, name := range slices.Sorted(maps.Keys(m.FallbackModels)) {
		if !slices.Contains(m.Fallbacks, name) {
			v.at(p+".fallback_models", "model %q has a fallback model for backend %q, which is not one of its fallbacks", m.Name, name)
		} else if m.FallbackModels[name] == "" {
			v.at(p+".fallback_models", "model %q names an empty fallback model for backend %q", m.Name, name)
		}
	}
}

// FallbackModel is the model name backend expects in the failover chain
// of a version whose upstream model is upstream: its fallback_models
// entry, else upstream.
func (m *Model) FallbackModel(backend, upstream string) string {
	if name, ok := m.FallbackModels[backend]; ok {
		return name
	}
	return upstream
}

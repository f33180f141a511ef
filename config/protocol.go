package config

import "strings"

// DefaultAnthropicMaxTokens is the max_tokens sent to an Anthropic backend
// for a model without default_max_tokens when the client sent none: the
// Messages API requires the field.
const DefaultAnthropicMaxTokens = 4096

// protocols lists the backend protocols in the order messages name them.
var protocols = []Protocol{ProtocolOpenAI, ProtocolAnthropic, ProtocolOllama, ProtocolKServe}

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

// applyProtocolDefaults gives models on Anthropic backends their default
// output cap.
func (c *Config) applyProtocolDefaults() {
	for i := range c.Models {
		m := &c.Models[i]
		if b := c.Backend(m.Backend); b != nil && b.Protocol == ProtocolAnthropic && m.DefaultMaxTokens == 0 {
			m.DefaultMaxTokens = DefaultAnthropicMaxTokens
		}
	}
}

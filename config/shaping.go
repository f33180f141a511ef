package config

import (
	"fmt"
	"strings"

	"github.com/streamgate/streamgate/contract"
)

// Shaping adjusts a model's requests, in the client's API, before they
// reach a backend. Fields are top-level request fields.
type Shaping struct {
	// Defaults are set when the client sent the field not at all.
	Defaults map[string]any `yaml:"defaults"`
	// MaxTokens lowers a larger max_tokens / max_completion_tokens to it.
	MaxTokens int `yaml:"max_tokens"`
	// Temperature clamps the client's temperature into a range.
	Temperature *Range `yaml:"temperature"`
	// TopP clamps the client's top_p into a range.
	TopP *Range `yaml:"top_p"`
	// Drop removes these fields silently.
	Drop []string `yaml:"drop"`
	// Forbid refuses requests carrying these fields with a 400.
	Forbid []string `yaml:"forbid"`
	// Headers are added to the upstream request.
	Headers map[string]string `yaml:"headers"`
}

// Range is an inclusive [Min, Max] interval.
type Range struct {
	// Min is the lowest value let through.
	Min float64 `yaml:"min"`
	// Max is the highest value let through.
	Max float64 `yaml:"max"`
}

// shapingFields are fields shaping must not touch: routing and streaming
// depend on them.
var shapingFields = map[string]bool{"model": true, "stream": true, "messages": true}

func (v *validator) validateShaping(p string, m *Model) {
	s := m.Shaping
	if s == nil {
		return
	}
	p += ".shaping"
	if s.MaxTokens < 0 {
		v.at(p+".max_tokens", "model %q: shaping.max_tokens must be positive", m.Name)
	}
	for name, r := range map[string]*Range{"temperature": s.Temperature, "top_p": s.TopP} {
		if r != nil && r.Min > r.Max {
			v.at(p+"."+name, "model %q: shaping.%s has min %v above max %v", m.Name, name, r.Min, r.Max)
		}
	}
	for _, list := range []struct {
		name   string
		fields []string
	}{{"drop", s.Drop}, {"forbid", s.Forbid}} {
		for k, f := range list.fields {
			if shapingFields[f] || f == "" || strings.ContainsAny(f, ".*?#|@") {
				v.at(fmt.Sprintf("%s.%s[%d]", p, list.name, k), "model %q: shaping cannot %s the field %q", m.Name, list.name, f)
			}
		}
	}
	for f := range s.Defaults {
		if shapingFields[f] || strings.ContainsAny(f, ".*?#|@") {
			v.at(p+".defaults", "model %q: shaping cannot default the field %q", m.Name, f)
		}
	}
	for h := range s.Headers {
		lh := strings.ToLower(h)
		if lh != h || strings.HasPrefix(h, ":") || strings.HasPrefix(h, contract.HeaderPrefix) || strings.HasPrefix(h, "x-envoy-") ||
			h == "host" || h == "content-length" || h == "authorization" || h == "x-api-key" || h == "" {
			v.at(p+".headers", "model %q: shaping cannot set the header %q (lower-case names only; not routing, length or credential headers)", m.Name, h)
		}
	}
}

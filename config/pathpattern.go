package config

import (
	"fmt"
	"path"
	"strings"
)

// TenantPlaceholder stands for the caller's tenant name in service path
// patterns and body rules.
const TenantPlaceholder = "{tenant}"

// SegmentPattern matches one path segment (or one string): a path.Match
// glob that may hold TenantPlaceholder.
type SegmentPattern struct {
	raw string
	// anyTenant is raw with the placeholder as "*".
	anyTenant string
	tenant    bool
}

// ParseSegmentPattern checks and compiles s.
func ParseSegmentPattern(s string) (SegmentPattern, error) {
	rest := strings.ReplaceAll(s, TenantPlaceholder, "")
	if strings.ContainsAny(rest, "{}/") {
		return SegmentPattern{}, fmt.Errorf("pattern %q may hold only %s besides path.Match globs, and no '/'", s, TenantPlaceholder)
	}
	p := SegmentPattern{raw: s, anyTenant: strings.ReplaceAll(s, TenantPlaceholder, "*"), tenant: rest != s}
	if _, err := path.Match(p.anyTenant, ""); err != nil {
		return SegmentPattern{}, fmt.Errorf("pattern %q is not a valid glob: %w", s, err)
	}
	return p, nil
}

// Match reports whether v matches the pattern with tenant in place of the
// placeholder; an empty tenant matches the placeholder with anything.
func (p SegmentPattern) Match(v, tenant string) bool {
	pat := p.anyTenant
	if p.tenant && tenant != "" {
		pat = strings.ReplaceAll(p.raw, TenantPlaceholder, tenant)
	}
	ok, _ := path.Match(pat, v)
	return ok
}

// String returns the pattern as written.
func (p SegmentPattern) String() string { return p.raw }

// PathPattern matches a request path split into segments: a
// SegmentPattern per segment, and "**" as the last segment for any number
// of further segments (none included).
type PathPattern struct {
	raw  string
	segs []SegmentPattern
	rest bool
}

// ParsePathPattern checks and compiles s, which must start with "/".
func ParsePathPattern(s string) (PathPattern, error) {
	if !strings.HasPrefix(s, "/") {
		return PathPattern{}, fmt.Errorf("path pattern %q must start with '/'", s)
	}
	parts := strings.Split(s[1:], "/")
	p := PathPattern{raw: s, segs: make([]SegmentPattern, 0, len(parts))}
	for i, part := range parts {
		if part == "**" {
			if i != len(parts)-1 {
				return PathPattern{}, fmt.Errorf("path pattern %q: \"**\" may only be the last segment", s)
			}
			p.rest = true
			break
		}
		if strings.Contains(part, "**") {
			return PathPattern{}, fmt.Errorf("path pattern %q: \"**\" must be a whole segment", s)
		}
		sp, err := ParseSegmentPattern(part)
		if err != nil {
			return PathPattern{}, fmt.Errorf("path pattern %q: %w", s, err)
		}
		p.segs = append(p.segs, sp)
	}
	return p, nil
}

// MustPathPattern is ParsePathPattern for patterns a validated config
// holds; an invalid one matches nothing.
func MustPathPattern(s string) PathPattern {
	p, err := ParsePathPattern(s)
	if err != nil {
		return PathPattern{raw: s, segs: []SegmentPattern{{raw: "[", anyTenant: "["}}}
	}
	return p
}

// Match reports whether the path segments segs (decoded, without the
// leading "/") match, with tenant in place of the placeholder; an empty
// tenant matches the placeholder with anything.
func (p PathPattern) Match(segs []string, tenant string) bool {
	if len(segs) < len(p.segs) || (!p.rest && len(segs) != len(p.segs)) {
		return false
	}
	for i, sp := range p.segs {
		if !sp.Match(segs[i], tenant) {
			return false
		}
	}
	return true
}

// Scoped reports whether the pattern names the tenant anywhere.
func (p PathPattern) Scoped() bool {
	for _, s := range p.segs {
		if s.tenant {
			return true
		}
	}
	return false
}

// String returns the pattern as written.
func (p PathPattern) String() string { return p.raw }

package extproc

import (
	"errors"
	"net/url"
	"slices"
	"strings"

	"github.com/streamgate/streamgate/config"
)

// Sentinels of service requests (docs/services.md); each has a row in the
// refusal table.
var (
	// ErrServicePath marks a service path the gateway will not classify:
	// dot segments, empty segments, encoded slashes or bad escapes.
	ErrServicePath = errors.New("service path is not canonical")
	// ErrUnknownOperation marks a service request no operation matches.
	ErrUnknownOperation = errors.New("no operation of the service matches")
	// ErrOutOfScope marks a request for another tenant's part of a
	// service (a path or body rule naming {tenant}).
	ErrOutOfScope = errors.New("request outside the tenant's scope")
)

// serviceTable is the services of one config: which path prefix leads
// where and how requests are classified. Immutable; part of Routes.
type serviceTable struct {
	entries []*serviceEntry
	// tenants are the tenant names metrics may carry; others are "other".
	tenants map[string]bool
}

// serviceEntry is one mounted service.
type serviceEntry struct {
	name, prefix, rewrite, backend string
	ops                            []serviceOp
	// opNames are the operation names, for bounding metric labels.
	opNames map[string]bool
}

// serviceOp is one operation: methods, path patterns and an optional body rule.
type serviceOp struct {
	name    string
	methods []string
	paths   []config.PathPattern
	// body, when set, names the field of the JSON body to check.
	body      string
	bodyMatch config.SegmentPattern
}

// newServiceTable compiles cfg's services; nil when there are none.
func newServiceTable(cfg *config.Config) *serviceTable {
	if len(cfg.Services) == 0 {
		return nil
	}
	t := &serviceTable{tenants: map[string]bool{}}
	for _, s := range cfg.Services {
		e := &serviceEntry{name: s.Name, prefix: s.PathPrefix, rewrite: s.Rewrite, backend: s.Backend, opNames: map[string]bool{}}
		for _, o := range s.Operations {
			op := serviceOp{name: o.Name, methods: o.Methods}
			for _, p := range o.Paths {
				op.paths = append(op.paths, config.MustPathPattern(p))
			}
			if o.Body != nil {
				op.body = o.Body.Field
				op.bodyMatch, _ = config.ParseSegmentPattern(o.Body.Match)
			}
			e.ops = append(e.ops, op)
			e.opNames[o.Name] = true
		}
		t.entries = append(t.entries, e)
	}
	if a := cfg.Auth; a != nil {
		for _, tn := range a.Tenants {
			t.tenants[tn.Name] = true
		}
	}
	if l := cfg.Limits; l != nil {
		t.tenants[l.DefaultTenant] = true
		for _, tn := range l.Tenants {
			t.tenants[tn.Name] = true
		}
	}
	return t
}

// lookup returns the service mounted on path's prefix, or nil. path has no
// query. Prefixes never overlap (config), so at most one matches.
func (t *serviceTable) lookup(path string) *serviceEntry {
	if t == nil {
		return nil
	}
	for _, e := range t.entries {
		if strings.HasPrefix(path, e.prefix) {
			return e
		}
	}
	return nil
}

// service returns the service mounted on path's prefix, or nil.
func (r *Routes) service(path string) *serviceEntry {
	if r == nil {
		return nil
	}
	return r.services.lookup(path)
}

// byName returns the service called name, or nil.
func (t *serviceTable) byName(name string) *serviceEntry {
	if t == nil {
		return nil
	}
	for _, e := range t.entries {
		if e.name == name {
			return e
		}
	}
	return nil
}

// upstreamPath is the path the backend sees (prefix rewritten), without query.
func (e *serviceEntry) upstreamPath(path string) string {
	if e.rewrite == "" {
		return path
	}
	return e.rewrite + path[len(e.prefix):]
}

// classify finds the operation of a request by its method and upstream
// path (no query) and checks the tenant's scope: the first operation whose
// method and some path pattern match, with any value for {tenant}, is the
// request's; then one of its patterns must match with tenant itself (an
// empty tenant, on a gateway without tenants, matches any). A path that is
// not canonical is refused before any pattern sees it.
func (e *serviceEntry) classify(method, upstream, tenant string) (*serviceOp, error) {
	segs, err := splitServicePath(upstream)
	if err != nil {
		return nil, err
	}
	for i := range e.ops {
		op := &e.ops[i]
		if len(op.methods) > 0 && !slices.Contains(op.methods, method) {
			continue
		}
		matched, scoped := false, false
		for _, p := range op.paths {
			if p.Match(segs, "") {
				matched = true
				if !p.Scoped() || tenant == "" || p.Match(segs, tenant) {
					scoped = true
					break
				}
			}
		}
		if !matched {
			continue
		}
		if !scoped {
			return op, reject(ErrOutOfScope, "Tenant %s may not reach %s on service %s.", tenant, clip(upstream, maxEchoedPath), e.name)
		}
		return op, nil
	}
	return nil, reject(ErrUnknownOperation, "The service %s has no operation for %s %s.", e.name, method, clip(upstream, maxEchoedPath))
}

// splitServicePath splits an absolute path into its decoded segments. It
// refuses what a backend might read differently from the gateway's
// patterns: bad escapes, segments that decode to contain '/' or '\', "."
// and "..", and empty segments other than a trailing one.
func splitServicePath(p string) ([]string, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, reject(ErrServicePath, "The path must start with '/'.")
	}
	raw := strings.Split(p[1:], "/")
	segs := make([]string, len(raw))
	for i, r := range raw {
		s, err := url.PathUnescape(r)
		switch {
		case err != nil:
			return nil, reject(ErrServicePath, "The path holds a malformed %%-escape.")
		case strings.ContainsAny(s, "/\\"), s == ".", s == "..":
			return nil, reject(ErrServicePath, "The path may not hold dot segments or encoded slashes.")
		case s == "" && i != len(raw)-1:
			return nil, reject(ErrServicePath, "The path may not hold empty segments.")
		}
		segs[i] = s
	}
	return segs, nil
}

// label bounds a tenant name for metrics.
func (t *serviceTable) tenantLabel(tenant string) string {
	if tenant == "" || t.tenants[tenant] {
		return tenant
	}
	return "other"
}

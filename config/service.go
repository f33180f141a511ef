package config

import (
	"fmt"
	"slices"
	"strings"
)

// ProtocolHTTP is a plain HTTP service that is not a model API (a vector
// database, a feature store): the gateway never reads a model from its
// requests. Its backend serves one or more entries of Config.Services,
// which mount it on a path prefix and name its operations.
const ProtocolHTTP Protocol = "http"

// OperationAny is the operation of a service that lists none: every method
// and path under its prefix.
const OperationAny = "any"

// Service mounts a backend of protocol http on a path prefix of the gateway
// and names the operations tenants may be granted (docs/services.md).
// Requests are routed by their path alone and pass through untouched both
// ways, streams included; the policy reads the method, the path and the
// headers, and the body only for operations with a body rule.
type Service struct {
	// Name is unique; tenants are granted operations of it by this name and
	// metrics label it.
	Name string `yaml:"name"`
	// Backend is the backend (protocol http) serving it.
	Backend string `yaml:"backend"`
	// PathPrefix is where clients reach the service, starting and ending
	// with "/" (e.g. /chroma/, or /api/v2/ to mount a client that takes no
	// base path at the root). It must not overlap another service's prefix
	// or the model APIs (/v1/, the gRPC inference service).
	PathPrefix string `yaml:"path_prefix"`
	// Rewrite replaces PathPrefix in the path sent upstream (e.g. "/");
	// empty keeps the path as the client sent it.
	Rewrite string `yaml:"rewrite"`
	// Operations classify requests by method and upstream path; the first
	// that matches names the request's operation. A request matching none
	// gets 404. Empty means one operation, "any", matching every request.
	Operations []Operation `yaml:"operations"`

	// builtin marks the batch section's services (batch.go), mounted on
	// /v1/batches and /v1/files, which no configured service may use.
	builtin bool
}

// Operation is a named class of a service's requests: the unit tenants are
// granted, limited and measured by.
type Operation struct {
	// Name is unique within the service (a metrics label).
	Name string `yaml:"name"`
	// Methods are the HTTP methods it covers (upper case); empty covers all.
	Methods []string `yaml:"methods"`
	// Paths are patterns of the upstream path (after Rewrite, without the
	// query): segments separated by "/", where a segment "*" matches one
	// segment, "**" (last only) any number, a segment may hold path.Match
	// globs ("{tenant}-*"), and "{tenant}" stands for the caller's tenant
	// name. A request whose path matches with any value for {tenant} but
	// not with its own tenant's is outside its scope: 403.
	Paths []string `yaml:"paths"`
	// Body, when set, also checks a field of the JSON request body; the
	// body is then buffered for this operation only.
	Body *BodyRule `yaml:"body"`
}

// BodyRule checks one top-level string field of a JSON request body.
type BodyRule struct {
	// Field is the top-level field's name (e.g. name).
	Field string `yaml:"field"`
	// Match is a path.Match pattern the field's value must match, with
	// "{tenant}" standing for the caller's tenant (e.g. "{tenant}-*"). A
	// request without the field, or with a value of another type, is
	// refused.
	Match string `yaml:"match"`
}

// TenantService grants a tenant operations of one service.
type TenantService struct {
	// Name is the service's name.
	Name string `yaml:"name"`
	// Operations are operation names or path.Match globs; "*" grants all.
	Operations []string `yaml:"operations"`
}

// ServiceLimits are a tenant's limits on one service. Service requests
// count against these only, not against the tenant's model limits.
type ServiceLimits struct {
	// Name is the service's name.
	Name string `yaml:"name"`
	// RequestsPerMinute caps requests admitted per minute (0: unlimited).
	RequestsPerMinute int64 `yaml:"requests_per_minute"`
	// RequestBytesPerMinute caps request body bytes per minute, counted
	// from each request's content-length at admission (0: unlimited).
	RequestBytesPerMinute int64 `yaml:"request_bytes_per_minute"`
	// ConcurrentRequests caps requests open at once, until their response
	// ends (0: unlimited); excess requests wait in the queue.
	ConcurrentRequests int `yaml:"concurrent_requests"`
}

// Service returns the service with the given name, or nil.
func (c *Config) Service(name string) *Service {
	for i := range c.Services {
		if c.Services[i].Name == name {
			return &c.Services[i]
		}
	}
	return nil
}

// UpstreamPath is the path a service request goes upstream with: the
// prefix replaced by Rewrite. path must start with s.PathPrefix.
func (s *Service) UpstreamPath(path string) string {
	if s.Rewrite == "" {
		return path
	}
	return s.Rewrite + path[len(s.PathPrefix):]
}

// servedPrefixes are the paths the model APIs own; no service may mount on
// or under them, nor above them.
var servedPrefixes = []string{"/v1/", "/inference.GRPCInferenceService/"}

// httpMethods are the methods an operation may name.
var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

func (s *Service) applyDefaults() {
	if len(s.Operations) == 0 {
		s.Operations = []Operation{{Name: OperationAny, Paths: []string{"/**"}}}
	}
}

// validateServices checks the services section and that http backends
// serve services only.
func (v *validator) validateServices(c *Config) {
	names := map[string]int{}
	for i := range c.Services {
		s := &c.Services[i]
		p := fmt.Sprintf("$.services[%d]", i)
		if s.Name == "" || !validName(s.Name) {
			v.at(p+".name", "service %d needs a name of letters, digits, '-', '_' and '.'", i+1)
		}
		if j, dup := names[s.Name]; dup {
			v.at(p+".name", "service name %q is already used by service %d", s.Name, j+1)
		}
		names[s.Name] = i
		switch b := c.Backend(s.Backend); {
		case b == nil:
			v.at(p+".backend", "service %q: backend %q is not defined under backends", s.Name, s.Backend)
		case b.Protocol != ProtocolHTTP:
			v.at(p+".backend", "service %q: backend %q has protocol %s; services need protocol http", s.Name, s.Backend, b.Protocol)
		}
		v.validateMount(p, s, c.Services[:i])
		v.validateOperations(p, s)
	}
	for i := range c.Backends {
		b := &c.Backends[i]
		if b.Protocol == ProtocolHTTP && (b.Picking != nil || len(b.QueryParams) > 0) {
			v.at(fmt.Sprintf("$.backends[%d]", i), "backend %q (protocol http) passes requests through untouched: picking and query_params do not apply", b.Name)
		}
	}
	for i, m := range c.Models {
		for _, ver := range m.Versions {
			if b := c.Backend(ver.Backend); b != nil && b.Protocol == ProtocolHTTP {
				v.at(fmt.Sprintf("$.models[%d]", i), "model %q uses backend %q of protocol http, which serves services only", m.Name, b.Name)
			}
		}
	}
}

// validateMount checks a service's prefix and rewrite, and that the prefix
// overlaps neither an earlier service's nor the model APIs'.
func (v *validator) validateMount(p string, s *Service, earlier []Service) {
	valid := func(x string) bool {
		return strings.HasPrefix(x, "/") && strings.HasSuffix(x, "/") && !strings.ContainsAny(x, "?#*{}%\\") &&
			!strings.Contains(x, "//") && !strings.Contains(x, "/./") && !strings.Contains(x, "/../")
	}
	if s.builtin {
		return
	}
	if !valid(s.PathPrefix) || s.PathPrefix == "/" {
		v.at(p+".path_prefix", "service %q: path_prefix %q must be a path starting and ending with '/' (not the root alone), e.g. /chroma/", s.Name, s.PathPrefix)
		return
	}
	if s.Rewrite != "" && !valid(s.Rewrite) {
		v.at(p+".rewrite", "service %q: rewrite %q must be a path starting and ending with '/', e.g. /", s.Name, s.Rewrite)
	}
	overlaps := func(a, b string) bool { return strings.HasPrefix(a, b) || strings.HasPrefix(b, a) }
	for _, o := range servedPrefixes {
		if overlaps(s.PathPrefix, o) {
			v.at(p+".path_prefix", "service %q: path_prefix %q overlaps %s, which the model APIs use", s.Name, s.PathPrefix, o)
		}
	}
	for _, e := range earlier {
		if e.PathPrefix != "" && overlaps(s.PathPrefix, e.PathPrefix) {
			v.at(p+".path_prefix", "service %q: path_prefix %q overlaps service %q's %q", s.Name, s.PathPrefix, e.Name, e.PathPrefix)
		}
	}
}

func (v *validator) validateOperations(p string, s *Service) {
	names := map[string]bool{}
	for i, op := range s.Operations {
		op := op
		op.Name = strings.TrimSpace(op.Name)
		opp := fmt.Sprintf("%s.operations[%d]", p, i)
		if op.Name == "" || !validName(op.Name) {
			v.at(opp+".name", "service %q: operation %d needs a name of letters, digits, '-', '_' and '.'", s.Name, i+1)
		}
		if names[op.Name] {
			v.at(opp+".name", "service %q: operation %q is listed twice", s.Name, op.Name)
		}
		names[op.Name] = true
		for k, m := range op.Methods {
			if !slices.Contains(httpMethods, m) {
				v.at(fmt.Sprintf("%s.methods[%d]", opp, k), "service %q: operation %q: method %q is not one of %s", s.Name, op.Name, m, strings.Join(httpMethods, ", "))
			}
		}
		if len(op.Paths) == 0 {
			v.at(opp, "service %q: operation %q lists no paths; \"/**\" matches every path", s.Name, op.Name)
		}
		for k, pat := range op.Paths {
			if _, err := ParsePathPattern(pat); err != nil {
				v.at(fmt.Sprintf("%s.paths[%d]", opp, k), "service %q: operation %q: %v", s.Name, op.Name, err)
			}
		}
		if b := op.Body; b != nil {
			if b.Field == "" {
				v.at(opp+".body.field", "service %q: operation %q: body.field names the top-level JSON field to check", s.Name, op.Name)
			}
			if _, err := ParseSegmentPattern(b.Match); err != nil {
				v.at(opp+".body.match", "service %q: operation %q: body.match: %v", s.Name, op.Name, err)
			}
		}
	}
}

// validateTenantServices checks a tenant's service grants.
func (v *validator) validateTenantServices(p string, t *Tenant) {
	for i, g := range t.Services {
		gp := fmt.Sprintf("%s.services[%d]", p, i)
		s := v.cfg.Service(g.Name)
		if s == nil {
			v.at(gp+".name", "tenant %q: service %q is not defined under services", t.Name, g.Name)
			continue
		}
		if len(g.Operations) == 0 {
			v.at(gp, "tenant %q: grants no operations of service %q; list operation names or globs (\"*\" grants all)", t.Name, g.Name)
		}
		for k, o := range g.Operations {
			if _, err := ParseSegmentPattern(o); err != nil || o == "" || strings.Contains(o, "{") {
				v.at(fmt.Sprintf("%s.operations[%d]", gp, k), "tenant %q: %q is not an operation name or glob", t.Name, o)
			}
		}
	}
}

// validateServiceLimits checks a tenant's limits on services.
func (v *validator) validateServiceLimits(p string, t TenantLimits) {
	seen := map[string]bool{}
	for i, s := range t.Services {
		sp := fmt.Sprintf("%s.services[%d]", p, i)
		if v.cfg.Service(s.Name) == nil {
			v.at(sp+".name", "limits for service %q: no such service under services", s.Name)
		}
		if seen[s.Name] {
			v.at(sp+".name", "service %q is listed twice", s.Name)
		}
		seen[s.Name] = true
		if s.RequestsPerMinute < 0 || s.RequestBytesPerMinute < 0 || s.ConcurrentRequests < 0 {
			v.at(sp, "limits for service %q must not be negative", s.Name)
		}
	}
}

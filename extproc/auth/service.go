package auth

import (
	"path"

	"github.com/streamgate/streamgate/config"
)

// serviceGrants indexes a tenant's service grants by service; nil for none.
func serviceGrants(gs []config.TenantService) map[string][]string {
	if len(gs) == 0 {
		return nil
	}
	m := make(map[string][]string, len(gs))
	for _, g := range gs {
		m[g.Name] = append(m[g.Name], g.Operations...)
	}
	return m
}

// AllowsOperation reports whether the tenant was granted the operation of
// the service (operation names or path.Match globs; "*" grants all). A
// service the tenant has no grant for allows nothing.
func (t *Tenant) AllowsOperation(service, operation string) bool {
	for _, g := range t.services[service] {
		if ok, _ := path.Match(g, operation); ok {
			return true
		}
	}
	return false
}

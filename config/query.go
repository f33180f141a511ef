package config

import (
	"fmt"
	"strings"
)

// validateQueryParams checks backend b's query_params: plain parameter
// names, on an HTTP backend (gRPC calls have no query string).
func (v *validator) validateQueryParams(p string, b *Backend) {
	if len(b.QueryParams) > 0 && b.Protocol.IsGRPC() {
		v.at(p+".query_params", "backend %q: query_params does not apply to the %s protocol", b.Name, b.Protocol)
	}
	for i, q := range b.QueryParams {
		if q == "" || strings.ContainsAny(q, "&=?#%+ \t") {
			v.at(fmt.Sprintf("%s.query_params[%d]", p, i), "backend %q: query parameter %q must be a plain name (no & = ? # %% + or spaces)", b.Name, q)
		}
	}
}

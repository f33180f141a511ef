package extproc

import (
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// queryPath removes from the request's query string every parameter its
// backend does not allow (Route.QueryParams; none by default), by setting
// :path in set. A request without a query string costs nothing. Logs never
// carry the query (pathOnly).
func (p *processor) queryPath(set []*corev3.HeaderValueOption, allowed []string) []*corev3.HeaderValueOption {
	path, ok := upstreamPath(p.path, allowed)
	if !ok {
		return set
	}
	return append(set, header(":path", path))
}

// upstreamPath returns reqPath with only the allowed query parameters kept,
// verbatim and in order, and whether that differs from reqPath. A
// parameter is matched by its raw name (before '='), so an escaped name
// never matches: clients must spell allowed names plainly.
func upstreamPath(reqPath string, allowed []string) (string, bool) {
	path, query, ok := strings.Cut(reqPath, "?")
	if !ok {
		return reqPath, false
	}
	var kept strings.Builder
	for part := range strings.SplitSeq(query, "&") {
		name, _, _ := strings.Cut(part, "=")
		if name == "" || !slices.Contains(allowed, name) {
			continue
		}
		if kept.Len() > 0 {
			kept.WriteByte('&')
		}
		kept.WriteString(part)
	}
	if kept.Len() == 0 {
		return path, true
	}
	out := path + "?" + kept.String()
	return out, out != reqPath
}

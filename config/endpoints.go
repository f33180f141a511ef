package config

import (
	"fmt"
	"slices"
	"strings"
)

// ModelEndpointPaths are the client API paths a model can serve, the
// values models[].endpoints takes. The ext_proc's endpoint table
// (extproc/endpoints.go apiEndpoints) has one row for each; a test holds
// the two equal. Read-only.
var ModelEndpointPaths = []string{
	"/v1/chat/completions",
	"/v1/completions",
	"/v1/embeddings",
	"/v1/messages",
	"/v1/responses",
	"/v1/rerank",
	"/v1/images/generations",
	"/v1/images/edits",
	"/v1/audio/transcriptions",
	"/v1/audio/translations",
	"/v1/audio/speech",
	"/v1/realtime",
}

// validateModelEndpoints checks a model's endpoints list: known API
// paths, each once.
func (v *validator) validateModelEndpoints(p string, m Model) {
	seen := map[string]bool{}
	for k, e := range m.Endpoints {
		ep := fmt.Sprintf("%s.endpoints[%d]", p, k)
		switch {
		case !slices.Contains(ModelEndpointPaths, e):
			v.at(ep, "model %q lists endpoint %q; a model's endpoints are API paths among %s", m.Name, e, strings.Join(ModelEndpointPaths, ", "))
		case seen[e]:
			v.at(ep, "model %q lists endpoint %q twice", m.Name, e)
		}
		seen[e] = true
	}
}

package extproc

import (
	"encoding/json"
)

type modelList struct {
	Object string      `json:"object"`
	Data   []modelInfo `json:"data"`
}

type modelInfo struct {
	ID         string          `json:"id"`
	Object     string          `json:"object"`
	Created    int64           `json:"created"`
	OwnedBy    string          `json:"owned_by"`
	Streamgate modelExtensions `json:"streamgate"`
}

// modelExtensions is Streamgate's extension of an OpenAI model object,
// under the "streamgate" key that clients ignore (the OpenAI SDKs keep
// unknown fields).
type modelExtensions struct {
	// Endpoints are the API paths the model serves (Route.Serves) that the
	// tenant may call, in the gateway's table order.
	Endpoints []string `json:"endpoints"`
}

// modelList answers GET /v1/models from the routing table: the gateway's
// public model names, never the backends' upstream names, each with the
// endpoints it serves (computed once per config) that the tenant may call.
func (p *processor) modelList() []byte {
	l := modelList{Object: "list", Data: make([]modelInfo, 0, len(p.routes.names))}
	for _, n := range p.routes.names {
		if p.tenant != nil && !p.tenant.AllowsModel(n) {
			continue
		}
		l.Data = append(l.Data, modelInfo{ID: n, Object: "model", Created: p.routes.created, OwnedBy: "streamgate",
			Streamgate: modelExtensions{Endpoints: p.tenantEndpoints(p.routes.byModel[n].serves)}})
	}
	b, _ := json.Marshal(l)
	return b
}

// tenantEndpoints returns the paths of serves the tenant may call: serves
// itself on an open gateway.
func (p *processor) tenantEndpoints(serves []string) []string {
	if p.tenant == nil {
		return serves
	}
	out := make([]string, 0, len(serves))
	for _, e := range serves {
		if p.tenant.AllowsEndpoint(e) {
			out = append(out, e)
		}
	}
	return out
}

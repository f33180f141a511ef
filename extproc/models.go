package extproc

import (
	"encoding/json"
)

type modelList struct {
	Object string      `json:"object"`
	Data   []modelInfo `json:"data"`
}

type modelInfo struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// modelList answers GET /v1/models from the routing table: the gateway's
// public model names, never the backends' upstream names.
func (p *processor) modelList() []byte {
	l := modelList{Object: "list", Data: make([]modelInfo, 0, len(p.routes.names))}
	for _, n := range p.routes.names {
		if p.tenant != nil && !p.tenant.AllowsModel(n) {
			continue
		}
		l.Data = append(l.Data, modelInfo{ID: n, Object: "model", Created: p.routes.created, OwnedBy: "streamgate"})
	}
	b, _ := json.Marshal(l)
	return b
}

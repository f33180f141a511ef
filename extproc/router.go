package extproc

import (
	"github.com/streamgate/streamgate/config"
)

// Route is where one public model name goes.
type Route struct {
	Model         string // public name
	Backend       string // backend (cluster) name
	UpstreamModel string // model name the backend expects
}

// Routes is an immutable lookup table built from one config; share it
// freely between goroutines and swap a new one in on reload.
type Routes struct {
	byModel map[string]*Route
	names   []string // public model names in config order
	created int64    // unix time the table was built, for /v1/models
}

// NewRoutes builds the table for cfg.
func NewRoutes(cfg *config.Config, created int64) *Routes {
	r := &Routes{byModel: make(map[string]*Route, len(cfg.Models)), created: created}
	for _, m := range cfg.Models {
		r.byModel[m.Name] = &Route{Model: m.Name, Backend: m.Backend, UpstreamModel: m.UpstreamModel}
		r.names = append(r.names, m.Name)
	}
	return r
}

// Lookup returns the route for a public model name, or nil.
func (r *Routes) Lookup(model string) *Route { return r.byModel[model] }

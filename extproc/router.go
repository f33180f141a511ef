package extproc

import (
	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc/translate"
)

// Route is where one public model name goes.
type Route struct {
	Model         string // public name
	Backend       string // backend (cluster) name
	UpstreamModel string // model name the backend expects
	// Protocol is the backend's wire protocol; clients speaking another API
	// are translated (see translation.go).
	Protocol config.Protocol
	// DefaultMaxTokens is the output cap for backends that require one.
	DefaultMaxTokens int
}

// Routes is an immutable lookup table built from one config; share it
// freely between goroutines and swap a new one in on reload.
type Routes struct {
	byModel map[string]*Route
	names   []string // public model names in config order
	created int64    // unix time the table was built, for /v1/models
	// translates holds the client APIs some model serves through a
	// translation; only their responses need ext_proc.
	translates map[translate.Client]bool
}

// NewRoutes builds the table for cfg.
func NewRoutes(cfg *config.Config, created int64) *Routes {
	r := &Routes{byModel: make(map[string]*Route, len(cfg.Models)), created: created, translates: map[translate.Client]bool{}}
	for _, m := range cfg.Models {
		route := &Route{Model: m.Name, Backend: m.Backend, UpstreamModel: m.UpstreamModel, DefaultMaxTokens: m.DefaultMaxTokens}
		if b := cfg.Backend(m.Backend); b != nil {
			route.Protocol = b.Protocol
		}
		for _, c := range []translate.Client{translate.ClientChat, translate.ClientCompletions, translate.ClientEmbeddings, translate.ClientMessages} {
			if translate.Supported(c, translate.Protocol(route.Protocol)) {
				r.translates[c] = true
			}
		}
		r.byModel[m.Name] = route
		r.names = append(r.names, m.Name)
	}
	return r
}

// Lookup returns the route for a public model name, or nil.
func (r *Routes) Lookup(model string) *Route { return r.byModel[model] }

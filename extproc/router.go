package extproc

import (
	"math/rand/v2"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/translate"
)

// Route is where one request goes: a public model's chosen version.
type Route struct {
	Model         string // public name
	Version       string // version name
	Backend       string // backend name
	Cluster       string // Envoy cluster: the backend, or its failover chain's
	UpstreamModel string // model name the backend expects
	// Protocol is the backend's wire protocol; clients speaking another API
	// are translated (see translation.go).
	Protocol config.Protocol
	// DefaultMaxTokens is the output cap for backends that require one.
	DefaultMaxTokens int
	// Shaping adjusts the model's requests; nil leaves them alone.
	Shaping *shaper
	// GRPCMethods are the gRPC methods beyond the defaults that every
	// backend of the route's failover chain accepts (grpc_methods); nil
	// for none.
	GRPCMethods map[string]bool
	// QueryParams are the query parameters the backend may receive; the
	// others are removed (see query.go).
	QueryParams []string
	// NativeResponses: every backend of the failover chain serves the
	// Responses API itself (responses_api), so /v1/responses passes through.
	NativeResponses bool
	// Enabled are the endpoints the model's endpoints list enables (every
	// one without a list); a request on another gets a 404 (checkEndpoint).
	Enabled endpointSet
	// Serves are the API paths the model serves (modelEndpoints), as
	// GET /v1/models lists them; shared by the model's routes, read-only.
	Serves []string
	// AzureAPIVersion is set for an Azure OpenAI backend: requests go to
	// its deployment paths with this api-version (provider.go).
	AzureAPIVersion string
	// VertexProject and VertexLocation are set for a Vertex AI backend:
	// translated Gemini requests go to its publisher model paths.
	VertexProject, VertexLocation string
	// FirstByteTimeout is the first-byte deadline of the route's streaming
	// requests in milliseconds, ready for contract.PerTryTimeoutHeader;
	// empty for none (deadline.go).
	FirstByteTimeout string
	// BedrockInvoke: a bedrock backend reached through Claude's
	// InvokeModel API (aws.api: invoke) instead of Converse.
	BedrockInvoke bool
	// Cross is set when the version's failover chain mixes protocols:
	// each attempt is translated and authorized for its own backend
	// (cross.go, upstream.go); nil otherwise.
	Cross *crossChain
}

// modelRoutes holds one public model's versions with cumulative weights.
type modelRoutes struct {
	versions []Route
	cumul    []uint64 // cumul[i] = sum of weights of versions[0..i]
	allowPin bool
	serves   []string // the API paths the model serves (modelEndpoints)
}

// Routes is an immutable lookup table built from one config; share it
// freely between goroutines and swap a new one in on reload.
type Routes struct {
	byModel map[string]*modelRoutes
	names   []string // public model names in config order
	created int64    // unix time the table was built, for /v1/models
	// translates holds the client APIs some model serves through a
	// translation; only their responses need ext_proc.
	translates map[translate.Client]bool
	// clusters are the Envoy clusters routes lead to (backends and
	// failover chains), for bounding metric labels.
	clusters map[string]bool
	// body is what every request body is held to before it is read.
	body *bodyPolicy
	// services are the mounted services (service.go); nil for none.
	services *serviceTable
}

// NewRoutes builds the table for cfg.
func NewRoutes(cfg *config.Config, created int64) *Routes {
	r := &Routes{byModel: make(map[string]*modelRoutes, len(cfg.Models)), created: created, translates: map[translate.Client]bool{},
		clusters: map[string]bool{}, body: newBodyPolicy(cfg), services: newServiceTable(cfg)}
	for i := range cfg.Models {
		m := &cfg.Models[i]
		mr := &modelRoutes{allowPin: m.AllowPin}
		enabled := enabledEndpoints(m)
		sh := newShaper(m.Shaping)
		var sum uint64
		for j := range m.Versions {
			v := &m.Versions[j]
			sum += uint64(v.Weight)
			chain := contract.FailoverChain(v.Backend, m.Fallbacks)
			route := Route{Model: m.Name, Version: v.Name, Backend: v.Backend,
				Cluster: contract.FailoverCluster(chain), UpstreamModel: v.UpstreamModel, DefaultMaxTokens: m.DefaultMaxTokens, Shaping: sh,
				GRPCMethods: grpcExtraMethods(cfg, chain)}
			if b := cfg.Backend(v.Backend); b != nil {
				route.Protocol, route.QueryParams = b.Protocol, b.QueryParams
				if b.Azure != nil {
					route.AzureAPIVersion = b.Azure.APIVersion
				}
				if b.Vertex != nil {
					route.VertexProject, route.VertexLocation = b.Vertex.Project, b.Vertex.Location
				}
				route.BedrockInvoke = b.AWS.Invoke()
			}
			route.NativeResponses = allServeResponses(cfg, chain)
			route.FirstByteTimeout = firstByteTimeout(cfg, v.Backend)
			r.noteClusters(route.Cluster, chain)
			r.noteTranslations(route.wire(), enabled)
			if cfg.MixesProtocols(v.Backend, m.Fallbacks) {
				r.crossRoute(cfg, m, &route, chain, enabled)
			}
			mr.versions = append(mr.versions, route)
			mr.cumul = append(mr.cumul, sum)
		}
		serves := modelEndpoints(m, mr.versions)
		for j := range mr.versions {
			mr.versions[j].Enabled, mr.versions[j].Serves = enabled, serves
		}
		mr.serves = serves
		r.byModel[m.Name] = mr
		r.names = append(r.names, m.Name)
	}
	return r
}

// bodyPolicy is what request bodies are held to; nil (the defaults) for a nil table.
func (r *Routes) bodyPolicy() *bodyPolicy {
	if r == nil {
		return nil
	}
	return r.body
}

// Has reports whether model is a public model name.
func (r *Routes) Has(model string) bool { return r.byModel[model] != nil }

// Pick chooses the route for model: the pinned version when pin is set,
// otherwise a version drawn by weight with roll, a uniform random number
// source (nil means math/rand/v2). It returns ErrUnknownModel, or
// ErrVersionNotFound / ErrPinNotAllowed for a bad pin.
func (r *Routes) Pick(model, pin string, roll func(n uint64) uint64) (*Route, error) {
	mr := r.byModel[model]
	if mr == nil {
		return nil, reject(ErrUnknownModel, "The model `%s` does not exist or you do not have access to it.", model)
	}
	if pin != "" {
		if !mr.allowPin {
			return nil, reject(ErrPinNotAllowed, "The model `%s` does not allow choosing a version.", model)
		}
		for i := range mr.versions {
			if mr.versions[i].Version == pin {
				return &mr.versions[i], nil
			}
		}
		return nil, reject(ErrVersionNotFound, "The model `%s` has no version `%s`.", model, pin)
	}
	if len(mr.versions) == 1 {
		return &mr.versions[0], nil
	}
	if roll == nil {
		roll = rand.Uint64N
	}
	x := roll(mr.cumul[len(mr.cumul)-1])
	for i, c := range mr.cumul {
		if x < c {
			return &mr.versions[i], nil
		}
	}
	return &mr.versions[len(mr.versions)-1], nil
}

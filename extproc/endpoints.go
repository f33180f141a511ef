package extproc

import (
	"errors"
	"strings"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc/translate"
)

// ErrEndpointNotEnabled is a request on an API the model's endpoints list
// (models[].endpoints) leaves out.
var ErrEndpointNotEnabled = errors.New("endpoint not enabled for the model")

// apiEndpoint is one client-facing API path the gateway serves: which
// endpoint requests on it are, the API its clients speak (translation.go),
// and whether a route's backends can serve it.
type apiEndpoint struct {
	path   string
	e      endpoint
	client translate.Client
	// serves reports whether every backend of route serves the endpoint,
	// as is or through a translation; nil for paths that are not a model's
	// (GET /v1/models).
	serves func(a *apiEndpoint, route *Route) bool
}

// apiEndpoints is the one table of client API paths: routing by path
// (endpointFor), the client API of each (clientAPI), and each model's
// capabilities (modelEndpoints) read it. A new endpoint adds one line here
// (and its path to config.ModelEndpointPaths, which
// TestEndpointTableMatchesConfig holds equal). Read-only.
var apiEndpoints = []apiEndpoint{
	{"/v1/chat/completions", endpointChat, translate.ClientChat, translatable},
	{"/v1/completions", endpointCompletions, translate.ClientCompletions, translatable},
	{"/v1/embeddings", endpointEmbeddings, translate.ClientEmbeddings, translatable},
	{"/v1/messages", endpointMessages, translate.ClientMessages, translatable},
	{"/v1/responses", endpointResponses, translate.ClientResponses, servesResponses},
	{"/v1/rerank", endpointRerank, translate.ClientRerank, translatable},
	{"/v1/images/generations", endpointImageGenerations, translate.ClientImages, translatable},
	{"/v1/images/edits", endpointImageEdits, translate.ClientImages, translatable},
	{"/v1/audio/transcriptions", endpointTranscriptions, translate.ClientAudio, translatable},
	{"/v1/audio/translations", endpointTranslations, translate.ClientAudio, translatable},
	{"/v1/audio/speech", endpointSpeech, translate.ClientAudio, translatable},
	{realtimePath, endpointRealtime, translate.ClientUnknown, openAIOnly},
	{"/v1/models", endpointModels, translate.ClientUnknown, nil},
}

// endpointByPath indexes apiEndpoints by path.
var endpointByPath = func() map[string]*apiEndpoint {
	m := make(map[string]*apiEndpoint, len(apiEndpoints))
	for i := range apiEndpoints {
		m[apiEndpoints[i].path] = &apiEndpoints[i]
	}
	return m
}()

// endpointFor is the endpoint of a request path (no query), endpointNone
// for a path the gateway does not serve.
// A scan of the short table: cheaper than a map lookup (string equality
// compares lengths first).
func endpointFor(path string) endpoint {
	for i := range apiEndpoints {
		if apiEndpoints[i].path == path {
			return apiEndpoints[i].e
		}
	}
	return endpointNone
}

// clientAPI is the API a client speaks on endpoint e.
func clientAPI(e endpoint) translate.Client {
	for i := range apiEndpoints {
		if apiEndpoints[i].e == e {
			return apiEndpoints[i].client
		}
	}
	return translate.ClientUnknown
}

// translatable: the backend's protocol serves the endpoint's API as is or
// through a translation.
func translatable(a *apiEndpoint, route *Route) bool {
	c, p := a.client, route.wire()
	return translate.Native(c, p) || translate.Supported(c, p)
}

// servesResponses: Responses is translated to Chat Completions, or passed
// to backends that serve it (responses_api).
func servesResponses(a *apiEndpoint, route *Route) bool {
	return route.NativeResponses || translatable(a, route)
}

// openAIOnly: only OpenAI-protocol backends serve the endpoint.
func openAIOnly(_ *apiEndpoint, route *Route) bool {
	return route.Protocol == config.ProtocolOpenAI
}

// endpointSet is a set of endpoints, one bit each.
type endpointSet uint64

// allEndpoints holds every endpoint.
const allEndpoints = ^endpointSet(0)

func (s endpointSet) has(e endpoint) bool { return s&(1<<e) != 0 }

// enabledEndpoints is the set of endpoints a model's endpoints list
// (models[].endpoints) enables: every one when it has none.
func enabledEndpoints(m *config.Model) endpointSet {
	if len(m.Endpoints) == 0 {
		return allEndpoints
	}
	var set endpointSet
	for _, path := range m.Endpoints {
		if a := endpointByPath[path]; a != nil {
			set |= 1 << a.e
		}
	}
	return set
}

// modelEndpoints returns the paths a model serves, as /v1/models lists them
// (in table order): those its endpoints list enables and every version's
// backends serve. Computed once per config (NewRoutes).
func modelEndpoints(m *config.Model, versions []Route) []string {
	enabled := enabledEndpoints(m)
	paths := []string{}
	for i := range apiEndpoints {
		a := &apiEndpoints[i]
		if a.serves == nil || !enabled.has(a.e) {
			continue
		}
		ok := len(versions) > 0
		for j := range versions {
			ok = ok && !versions[j].Protocol.IsGRPC() && a.serves(a, &versions[j]) && versions[j].Cross.serves(a)
		}
		if ok {
			paths = append(paths, a.path)
		}
	}
	return paths
}

// checkEndpoint refuses a request on an endpoint the route's model does not
// enable (models[].endpoints). An endpoint enabled but beyond what its
// backends' protocol serves is left to the translation's 400
// unsupported_by_backend.
func (p *processor) checkEndpoint(route *Route) error {
	if route.Enabled.has(p.endpoint) {
		return nil
	}
	serves := "nothing over HTTP"
	if len(route.Serves) > 0 {
		serves = strings.Join(route.Serves, ", ")
	}
	return reject(ErrEndpointNotEnabled, "The model `%s` does not support %s on this gateway; it serves %s.", route.Model, pathOnly(p.path), serves)
}

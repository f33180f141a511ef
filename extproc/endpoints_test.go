package extproc

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/extproc/translate"
)

// TestEndpointTableMatchesConfig: the paths a model may list
// (config.ModelEndpointPaths) are the model endpoints of the table, and
// each row routes its path to its endpoint.
func TestEndpointTableMatchesConfig(t *testing.T) {
	var paths []string
	for _, a := range apiEndpoints {
		assert.Equal(t, a.e, endpointFor(a.path), a.path)
		if a.serves != nil {
			paths = append(paths, a.path)
		}
	}
	assert.ElementsMatch(t, config.ModelEndpointPaths, paths, "add a new endpoint to both apiEndpoints and config.ModelEndpointPaths")
	assert.Equal(t, endpointNone, endpointFor("/v1/nope"))
	assert.Equal(t, translate.ClientEmbeddings, clientAPI(endpointEmbeddings))
	assert.Equal(t, translate.ClientUnknown, clientAPI(endpointModels))
}

const capabilitiesConfig = `backends:
  - {name: oa, protocol: openai, endpoints: ["127.0.0.1:1"]}
  - {name: vllm, protocol: openai, endpoints: ["127.0.0.1:2"], responses_api: true}
  - {name: an, protocol: anthropic, endpoints: ["127.0.0.1:3"]}
  - {name: ol, protocol: ollama, endpoints: ["127.0.0.1:4"]}
  - {name: ks, protocol: kserve-v2, endpoints: ["127.0.0.1:5"]}
  - {name: tr, protocol: kserve-v2-grpc, endpoints: ["127.0.0.1:6"]}
models:
  - {name: openai, backend: oa}
  - {name: native-responses, backend: vllm}
  - {name: claude, backend: an}
  - {name: llama, backend: ol}
  - {name: kserve, backend: ks}
  - {name: triton, backend: tr}
  - {name: chat-only, backend: oa, endpoints: [/v1/chat/completions]}
  - {name: listed-beyond, backend: an, endpoints: [/v1/messages, /v1/embeddings]}
  - name: mixed
    versions:
      - {name: v1, backend: oa, weight: 1}
      - {name: v2, backend: ol, weight: 1}
`

// TestModelEndpoints: a model serves what every version's backend protocol
// serves, as is or translated, narrowed by its endpoints list.
func TestModelEndpoints(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(capabilitiesConfig))
	require.NoError(t, err)
	r := NewRoutes(cfg, 1)
	for model, want := range map[string][]string{
		"openai":           {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/messages", "/v1/responses", "/v1/rerank", "/v1/images/generations", "/v1/images/edits", "/v1/audio/transcriptions", "/v1/audio/translations", "/v1/audio/speech", "/v1/realtime"},
		"native-responses": {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/messages", "/v1/responses", "/v1/rerank", "/v1/images/generations", "/v1/images/edits", "/v1/audio/transcriptions", "/v1/audio/translations", "/v1/audio/speech", "/v1/realtime"},
		"claude":           {"/v1/chat/completions", "/v1/messages", "/v1/responses"},
		"llama":            {"/v1/chat/completions", "/v1/embeddings", "/v1/responses"},
		"kserve":           {"/v1/completions"},
		"triton":           {},
		"chat-only":        {"/v1/chat/completions"},
		"listed-beyond":    {"/v1/messages"},
		"mixed":            {"/v1/chat/completions", "/v1/embeddings", "/v1/responses"},
	} {
		assert.Equal(t, want, r.byModel[model].serves, model)
		route, err := r.Pick(model, "", nil)
		require.NoError(t, err)
		assert.Equal(t, want, route.Serves, model)
	}
}

// TestModelEndpointRefused: a model whose endpoints list leaves an API out
// answers it 404 naming the model and the endpoint; an endpoint listed but
// beyond the protocol stays a 400 unsupported_by_backend.
func TestModelEndpointRefused(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(capabilitiesConfig))
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for name, tc := range map[string]struct {
		path, body string
		status     int
		code, msg  string
	}{
		"embeddings on a chat-only model": {"/v1/embeddings", `{"model":"chat-only","input":"x"}`, http.StatusNotFound, "model_endpoint_not_supported",
			"The model `chat-only` does not support /v1/embeddings on this gateway; it serves /v1/chat/completions."},
		"responses on a chat-only model": {"/v1/responses", `{"model":"chat-only","input":"x"}`, http.StatusNotFound, "model_endpoint_not_supported", "/v1/responses"},
		"chat on a chat-only model":      {"/v1/chat/completions", `{"model":"chat-only","messages":[]}`, 0, "", ""},
		"listed beyond the protocol": {"/v1/embeddings", `{"model":"listed-beyond","input":"x"}`, http.StatusBadRequest, "unsupported_by_backend",
			"cannot be used with the OpenAI Embeddings API"},
		"not listed, not servable": {"/v1/rerank", `{"model":"listed-beyond","query":"q","documents":["d"]}`, http.StatusNotFound, "model_endpoint_not_supported", "it serves /v1/messages"},
	} {
		t.Run(name, func(t *testing.T) {
			p := newProcessor(NewRoutes(cfg, 1), 1<<20, log, nil)
			p.ctx = t.Context()
			require.Nil(t, p.handle(reqHeaders("POST", tc.path, false)).GetImmediateResponse())
			status, body := immediateStatus(t, p.handle(bodyMsg(tc.body)))
			assert.Equal(t, tc.status, status)
			if tc.status != 0 {
				e, _ := body["error"].(map[string]any)
				assert.Equal(t, tc.code, e["code"])
				assert.Contains(t, e["message"], tc.msg)
			}
			p.finish()
		})
	}
	t.Run("the Realtime API", func(t *testing.T) {
		p := newProcessor(NewRoutes(cfg, 1), 1<<20, log, nil)
		p.ctx = t.Context()
		status, body := immediateStatus(t, p.handle(reqHeaders("GET", "/v1/realtime?model=chat-only", true, "upgrade", "websocket", "connection", "Upgrade")))
		assert.Equal(t, http.StatusNotFound, status)
		e, _ := body["error"].(map[string]any)
		assert.Equal(t, "model_endpoint_not_supported", e["code"])
		assert.Contains(t, e["message"], "/v1/realtime")
		p.finish()
	})
}

// TestModelListShowsEndpoints: GET /v1/models lists each model the tenant
// may use with the endpoints it serves that the tenant may call.
func TestModelListShowsEndpoints(t *testing.T) {
	const acme, guest = "sk-unit-acme-0123456789", "sk-unit-guest-0123456789"
	cfg, err := config.Parse("t.yaml", []byte(capabilitiesConfig+fmt.Sprintf(`auth:
  tenants:
    - {name: acme, models: ["*"], api_keys: [{hash: %s}]}
    - name: guest
      models: [llama, chat-only]
      endpoints: [/v1/embeddings, /v1/models]
      api_keys: [{hash: %s}]
`, auth.HashKey(acme), auth.HashKey(guest))))
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := auth.New(t.Context(), cfg, auth.Options{Log: log})
	require.NoError(t, err)
	list := func(key string) map[string][]string {
		p := newProcessor(NewRoutes(cfg, 1), 1<<20, log, nil)
		p.ctx, p.auth = t.Context(), a
		ir := p.handle(reqHeaders("GET", "/v1/models", true, "authorization", "Bearer "+key)).GetImmediateResponse()
		require.NotNil(t, ir)
		require.EqualValues(t, http.StatusOK, ir.GetStatus().GetCode(), string(ir.GetBody()))
		var l struct {
			Object string
			Data   []struct {
				ID, Object string
				Streamgate struct{ Endpoints []string }
			}
		}
		require.NoError(t, json.Unmarshal(ir.GetBody(), &l))
		assert.Equal(t, "list", l.Object)
		out := map[string][]string{}
		for _, m := range l.Data {
			assert.Equal(t, "model", m.Object)
			out[m.ID] = m.Streamgate.Endpoints
		}
		return out
	}
	all := list(acme)
	assert.Len(t, all, 9)
	assert.Equal(t, []string{"/v1/chat/completions", "/v1/embeddings", "/v1/responses"}, all["llama"])
	assert.Equal(t, []string{"/v1/chat/completions"}, all["chat-only"])
	assert.Equal(t, []string{}, all["triton"])
	assert.Equal(t, map[string][]string{"llama": {"/v1/embeddings"}, "chat-only": {}}, list(guest), "the guest's models, with the endpoints the guest may call")
}

// BenchmarkEndpointFor: the table lookup of a request path, once per
// request.
func BenchmarkEndpointFor(b *testing.B) {
	b.ReportAllocs()
	paths := []string{"/v1/chat/completions", "/v1/embeddings", "/v1/responses", "/v1/nope"}
	for i := 0; b.Loop(); i++ {
		_ = endpointFor(paths[i%len(paths)])
	}
}

// TestTranslatedEndpointsFollowTheEndpointsList: only the endpoints a model
// enables make their responses read for translation, so a chat-only Ollama
// model leaves every embeddings response to Envoy.
func TestTranslatedEndpointsFollowTheEndpointsList(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(`backends:
  - {name: ol, protocol: ollama, endpoints: ["127.0.0.1:4"]}
models:
  - {name: llama, backend: ol, endpoints: [/v1/chat/completions]}
`))
	require.NoError(t, err)
	r := NewRoutes(cfg, 1)
	assert.True(t, r.translates[translate.ClientChat])
	assert.False(t, r.translates[translate.ClientEmbeddings])
}

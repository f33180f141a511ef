package e2e

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakellm"
	"github.com/streamgate/streamgate/extproc/auth"
)

// Keys of the embeddings gateway. None may appear in a log line.
const (
	embKeyAcme  = "sk-e2e-emb-acme-5b7d9f1a3c"
	embKeySmall = "sk-e2e-emb-small-8e0a2c4b6d"
)

// embeddingsConfig: an embeddings model on an OpenAI backend (exact
// tokenizer), one on an Ollama backend (/api/embed), and a chat-only model;
// acme has a generous token rate, small 40 tokens a minute.
const embeddingsConfig = listeners + `backends:
  - name: oa
    protocol: openai
    endpoints: [{{.BackendA}}]
  - name: ol
    protocol: ollama
    endpoints: [{{.BackendB}}]
models:
  - {name: embed-openai, backend: oa, upstream_model: text-embed-up}
  - {name: embed-ollama, backend: ol, upstream_model: nomic-embed-text}
  - {name: chat-only, backend: oa, endpoints: [/v1/chat/completions]}
auth:
  tenants:
    - {name: acme, models: ["*"], api_keys: [{hash: %[1]s}]}
    - {name: small, models: ["*"], api_keys: [{hash: %[2]s}]}
limits:
  tokenizers: [{model: embed-openai, encoding: o200k_base}]
  tenants:
    - {name: acme, total_tokens_per_minute: 1000000}
    - {name: small, total_tokens_per_minute: 40}
`

type embList struct {
	Model  string
	Object string
	Usage  struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	}
	Data []struct {
		Object    string
		Index     int
		Embedding []float32
	}
}

type embAttempt struct {
	OK    *embList
	Error *struct {
		Class   string
		Status  int
		Code    string
		Message string
	}
}

// embResult is what embeddings_client.py saw for one model.
type embResult struct {
	Default     embAttempt
	Float       embAttempt
	Tokens      embAttempt
	EmptyList   embAttempt `json:"empty_list"`
	EmptyString embAttempt `json:"empty_string"`
	Mixed       embAttempt
	WireDefault struct {
		Data []struct{ Embedding any }
	} `json:"wire_default"`
}

// runEmbeddingsPy runs e2e/py/embeddings_client.py with key on models.
func runEmbeddingsPy(t *testing.T, py, gateway, key string, models ...string) (map[string]json.RawMessage, []byte) {
	t.Helper()
	args := append([]string{filepath.Join("py", "embeddings_client.py"), gateway, key}, models...)
	cmd := exec.CommandContext(t.Context(), py, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	require.NoError(t, err, "embeddings_client.py failed:\n%s", stderr.String())
	var out map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(stdout, &out), string(stdout))
	return out, stdout
}

// TestEmbeddingsWithOpenAISDK drives /v1/embeddings through Envoy with the
// openai Python SDK (its default base64 and "float") against an OpenAI and
// an Ollama backend, under auth and a token rate with the usage
// reconciled, then /v1/models and a chat-only model.
func TestEmbeddingsWithOpenAISDK(t *testing.T) {
	py := pythonSDKs(t)
	g := startGateway(t, fmt.Sprintf(embeddingsConfig, auth.HashKey(embKeyAcme), auth.HashKey(embKeySmall)))
	out, raw := runEmbeddingsPy(t, py, g.gateway, embKeyAcme, "embed-openai", "embed-ollama")
	hello, other := fakellm.Embed("hello world!"), fakellm.Embed("other")

	for model, upstream := range map[string]string{"embed-openai": "text-embed-up", "embed-ollama": "public"} {
		t.Run(model, func(t *testing.T) {
			var m embResult
			require.NoError(t, json.Unmarshal(out[model], &m))
			require.NotNil(t, m.Default.OK, "default call: %s", out[model])
			d := m.Default.OK
			assert.Equal(t, "list", d.Object)
			if upstream == "public" {
				assert.Equal(t, model, d.Model, "a translated answer names the public model")
			} else {
				assert.Equal(t, upstream, d.Model, "an OpenAI backend's answer passes as is")
			}
			require.Len(t, d.Data, 2)
			assert.Equal(t, "embedding", d.Data[0].Object)
			assert.Equal(t, []int{0, 1}, []int{d.Data[0].Index, d.Data[1].Index})
			assert.Equal(t, hello, d.Data[0].Embedding, "the SDK decoded the base64 vector bit for bit")
			assert.Equal(t, other, d.Data[1].Embedding)
			assert.Equal(t, 4, d.Usage.PromptTokens)
			assert.Equal(t, 4, d.Usage.TotalTokens)

			require.Len(t, m.WireDefault.Data, 1)
			wire, ok := m.WireDefault.Data[0].Embedding.(string)
			require.True(t, ok, "the SDK asked for base64 by default: the wire holds a string")
			assert.Equal(t, hello, decodeBase64Vector(t, wire))

			require.NotNil(t, m.Float.OK, "float call: %s", out[model])
			require.Len(t, m.Float.OK.Data, 1)
			assert.Equal(t, hello, m.Float.OK.Data[0].Embedding)

			if model == "embed-openai" {
				require.NotNil(t, m.Tokens.OK, "token-id arrays pass to an OpenAI backend")
				assert.Len(t, m.Tokens.OK.Data, 2)
				assert.Equal(t, 4, m.Tokens.OK.Usage.PromptTokens)
			} else {
				require.NotNil(t, m.Tokens.Error, "Ollama embeds text only")
				assert.Equal(t, 400, m.Tokens.Error.Status)
				assert.Equal(t, "unsupported_by_backend", m.Tokens.Error.Code)
				assert.Contains(t, m.Tokens.Error.Message, "'input'")
			}
			for name, a := range map[string]embAttempt{"empty list": m.EmptyList, "empty string": m.EmptyString, "mixed": m.Mixed} {
				require.NotNil(t, a.Error, name)
				assert.Equal(t, "BadRequestError", a.Error.Class, name)
				assert.Equal(t, "invalid_request", a.Error.Code, name)
				assert.Contains(t, a.Error.Message, "'input", name)
			}
		})
	}

	t.Run("models list with endpoints", func(t *testing.T) {
		var models []struct {
			ID, Object string
			Streamgate struct{ Endpoints []string }
		}
		require.NoError(t, json.Unmarshal(out["models"], &models), string(raw))
		got := map[string][]string{}
		for _, m := range models {
			assert.Equal(t, "model", m.Object)
			got[m.ID] = m.Streamgate.Endpoints
		}
		assert.Equal(t, map[string][]string{
			"embed-openai": {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/messages", "/v1/responses", "/v1/rerank", "/v1/images/generations", "/v1/images/edits", "/v1/audio/transcriptions", "/v1/audio/translations", "/v1/audio/speech", "/v1/realtime"},
			"embed-ollama": {"/v1/chat/completions", "/v1/embeddings", "/v1/responses"},
			"chat-only":    {"/v1/chat/completions"},
		}, got)
	})

	t.Run("a chat-only model refuses embeddings with 404", func(t *testing.T) {
		var a embAttempt
		require.NoError(t, json.Unmarshal(out["chat_only"], &a))
		require.NotNil(t, a.Error)
		assert.Equal(t, "NotFoundError", a.Error.Class)
		assert.Equal(t, "model_endpoint_not_supported", a.Error.Code)
		assert.Equal(t, "The model `chat-only` does not support /v1/embeddings on this gateway; it serves /v1/chat/completions.", a.Error.Message)
	})

	t.Run("usage reconciled from the backend's report", func(t *testing.T) {
		for _, model := range []string{"embed-openai", "embed-ollama"} {
			line := waitLogLine(t, g, func(l map[string]any) bool {
				return l["endpoint"] == "/v1/embeddings" && l["model"] == model && l["status"] == 200.0
			})
			assert.Equal(t, 4.0, line["input_tokens"], model)
			assert.Equal(t, 0.0, line["output_tokens"], model)
		}
		waitMetric(t, g, "streamgate_reservations_outstanding", 0)
	})

	t.Run("telemetry counts the embeddings operation", func(t *testing.T) {
		for _, model := range []string{"embed-openai", "embed-ollama"} {
			ops := map[string]string{"gen_ai_operation_name": "embeddings", "gen_ai_request_model": model}
			in := map[string]string{"gen_ai_operation_name": "embeddings", "gen_ai_request_model": model, "gen_ai_token_type": "input"}
			require.Eventually(t, func() bool {
				fams := scrapeFamilies(t, g)
				// default, float, wire, tokens (openai only), three bad inputs refused before any backend
				return sumWhere(fams, "gen_ai_server_request_duration_seconds", "count", ops) >= 3 &&
					sumWhere(fams, "gen_ai_client_token_usage", "sum", in) > 0
			}, 5*time.Second, 50*time.Millisecond, model)
		}
	})

	t.Run("tokens per minute: token ids count exactly", func(t *testing.T) {
		post := func(model string, n int) int {
			ids := make([]string, n)
			for i := range ids {
				ids[i] = "7"
			}
			body := `{"model":"` + model + `","input":[` + strings.Join(ids, ",") + `],"encoding_format":"float"}`
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, g.gateway+"/v1/embeddings", strings.NewReader(body))
			require.NoError(t, err)
			req.Header.Set("content-type", "application/json")
			req.Header.Set("authorization", "Bearer "+embKeySmall)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			return resp.StatusCode
		}
		assert.Equal(t, http.StatusTooManyRequests, post("embed-openai", 41), "41 token ids exceed 40 tokens a minute")
		assert.Equal(t, http.StatusOK, post("embed-openai", 30))
		assert.Equal(t, http.StatusTooManyRequests, post("embed-openai", 30), "the 30 reported tokens were charged")
	})
}

// decodeBase64Vector decodes OpenAI's base64 embedding encoding.
func decodeBase64Vector(t *testing.T, s string) []float32 {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(s)
	require.NoError(t, err)
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

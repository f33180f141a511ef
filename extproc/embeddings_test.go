package extproc

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/streamgate/streamgate/config"
)

func TestEmbeddingsInputShapes(t *testing.T) {
	for name, tc := range map[string]struct {
		input string // "" means absent
		shape inputShape
		err   string
	}{
		"string":             {`"hello"`, inputText, ""},
		"strings":            {`["a","b"]`, inputTexts, ""},
		"token ids":          {`[1,2,3]`, inputTokens, ""},
		"token-id arrays":    {`[[1,2],[3]]`, inputTokenArrays, ""},
		"absent":             {"", 0, "'input' field is required"},
		"null":               {`null`, 0, "'input' field is required"},
		"empty string":       {`""`, 0, "Invalid 'input': the string is empty"},
		"empty array":        {`[]`, 0, "Invalid 'input': the array is empty"},
		"empty string item":  {`["a",""]`, 0, "Invalid 'input[1]': the string is empty"},
		"empty token array":  {`[[1],[]]`, 0, "Invalid 'input[1]': the token array is empty"},
		"number":             {`5`, 0, "Invalid 'input': send a string"},
		"object":             {`{"text":"a"}`, 0, "Invalid 'input': send a string"},
		"bool":               {`true`, 0, "Invalid 'input': send a string"},
		"strings and ids":    {`["a",1]`, 0, "Invalid 'input[1]': the input mixes strings and token ids"},
		"ids and arrays":     {`[1,[2]]`, 0, "Invalid 'input[1]': the input mixes token ids and token-id arrays"},
		"strings and arrays": {`["a",[2]]`, 0, "Invalid 'input[1]': the input mixes strings and token-id arrays"},
		"negative id":        {`[1,-2]`, 0, "Invalid 'input[1]': a token id must be a non-negative integer"},
		"fractional id":      {`[1.5]`, 0, "Invalid 'input[0]': a token id must be a non-negative integer"},
		"exponent id":        {`[1e3]`, 0, "Invalid 'input[0]': a token id"},
		"nested bad id":      {`[[1],[2,"x"]]`, 0, "Invalid 'input[1][1]': a token id"},
		"deeper nesting":     {`[[[1]]]`, 0, "Invalid 'input[0][0]': a token id"},
		"object item":        {`[{"a":1}]`, 0, "Invalid 'input[0]': send strings"},
		"null item":          {`["a",null]`, 0, "Invalid 'input[1]': send strings"},
	} {
		t.Run(name, func(t *testing.T) {
			var raw []byte
			if tc.input != "" {
				raw = []byte(tc.input)
			}
			shape, err := checkEmbeddingsInput(raw)
			if tc.err == "" {
				require.NoError(t, err)
				assert.Equal(t, tc.shape, shape)
				return
			}
			require.Error(t, err)
			assert.Contains(t, publicMessage(err), tc.err)
			assert.Equal(t, http.StatusBadRequest, refusalOf(err).status)
			assert.Equal(t, "invalid_request", refusalOf(err).code)
		})
	}
}

// FuzzEmbeddingsInput: no input makes the check panic; an accepted one is
// JSON of the shape reported.
func FuzzEmbeddingsInput(f *testing.F) {
	for _, s := range []string{`"a"`, `["a","b"]`, `[1,2]`, `[[1],[2,3]]`, `["a",1]`, `[[1],[]]`, `[1e3]`, `[-1]`, `[[[1]]]`, `{"a":1}`, ``, `[`, `[1,`, `"\u0000"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !gjson.ValidBytes(raw) {
			return // parseRequest refuses the body before the input is read
		}
		shape, err := checkEmbeddingsInput(raw)
		if err != nil {
			require.Contains(t, publicMessage(err), "input")
			return
		}
		var v any
		require.NoError(t, json.Unmarshal(raw, &v))
		switch x := v.(type) {
		case string:
			require.Equal(t, inputText, shape)
			require.NotEmpty(t, x)
		case []any:
			require.NotEmpty(t, x)
			require.Contains(t, []inputShape{inputTexts, inputTokens, inputTokenArrays}, shape)
		default:
			t.Fatalf("accepted %s as %v", raw, shape)
		}
	})
}

// embeddingsConfig is a gateway with an exact tokenizer on model exact and
// a 1000 tokens/minute tenant.
const embeddingsConfig = `backends:
  - {name: a, protocol: openai, endpoints: ["127.0.0.1:1"]}
  - {name: o, protocol: ollama, endpoints: ["127.0.0.1:2"]}
models:
  - {name: exact, backend: a}
  - {name: rough, backend: a}
  - {name: ol, backend: o, upstream_model: nomic-embed-text}
limits:
  tenant_header: x-tenant
  default_tenant: acme
  tokenizers: [{model: exact, encoding: o200k_base}]
  tenants:
    - {name: acme, total_tokens_per_minute: 1000}
`

// TestEmbeddingsCountedForLimits: each input shape is reserved at its
// count: strings exactly with a tokenizer (else the estimate), token ids
// one each; no output is reserved.
func TestEmbeddingsCountedForLimits(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(embeddingsConfig))
	require.NoError(t, err)
	lim, err := NewLimits(cfg, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for name, tc := range map[string]struct {
		model, input string
		want         int64
	}{
		"string, exact":          {"exact", `"hello world"`, 2},
		"strings, exact":         {"exact", `["hello world","hello"]`, 3},
		"string, estimate":       {"rough", `"hello world!"`, 3}, // 12 bytes at 4 per token
		"token ids":              {"rough", `[1,2,3,4,5]`, 5},
		"token-id arrays":        {"exact", `[[1,2,3],[4],[5,6]]`, 6},
		"strings toward Ollama":  {"ol", `["hello world"]`, 3},
		"string with dimensions": {"exact", `"hello world"`, 2},
	} {
		t.Run(name, func(t *testing.T) {
			p := newProcessor(NewRoutes(cfg, 1), 1<<20, log, nil)
			p.ctx, p.limits = t.Context(), lim
			require.Nil(t, p.handle(reqHeaders("POST", "/v1/embeddings", false)).GetImmediateResponse())
			r := p.handle(bodyMsg(`{"model":"` + tc.model + `","input":` + tc.input + `}`))
			require.Nil(t, r.GetImmediateResponse(), "%s", r.GetImmediateResponse().GetBody())
			require.NotNil(t, p.lim)
			assert.Equal(t, tc.want, p.lim.input)
			assert.True(t, p.plan.settle, "the reservation settles from the reported usage")
			p.finish()
		})
	}
}

// TestEmbeddingsBadInputRefused: a bad input is a 400 invalid_request
// naming input, before routing; token ids toward Ollama are a 400
// unsupported_by_backend naming input.
func TestEmbeddingsBadInputRefused(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(embeddingsConfig))
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for name, tc := range map[string]struct {
		body, code string
	}{
		"missing input":        {`{"model":"exact"}`, "invalid_request"},
		"empty input":          {`{"model":"exact","input":[]}`, "invalid_request"},
		"mixed types":          {`{"model":"exact","input":["a",[1]]}`, "invalid_request"},
		"bad before unknown":   {`{"model":"nope","input":""}`, "invalid_request"},
		"token ids to Ollama":  {`{"model":"ol","input":[1,2]}`, "unsupported_by_backend"},
		"token rows to Ollama": {`{"model":"ol","input":[[1],[2]]}`, "unsupported_by_backend"},
	} {
		t.Run(name, func(t *testing.T) {
			p := newProcessor(NewRoutes(cfg, 1), 1<<20, log, nil)
			p.ctx = t.Context()
			require.Nil(t, p.handle(reqHeaders("POST", "/v1/embeddings", false)).GetImmediateResponse())
			status, body := immediateStatus(t, p.handle(bodyMsg(tc.body)))
			assert.Equal(t, http.StatusBadRequest, status)
			e, _ := body["error"].(map[string]any)
			assert.Equal(t, tc.code, e["code"])
			assert.Contains(t, e["message"], "'input")
			p.finish()
		})
	}
}

// TestEmbeddingsTranslatedForOllama: the request to an Ollama model goes
// to /api/embed with the upstream model, and the answer comes back in the
// OpenAI shape under the public name.
func TestEmbeddingsTranslatedForOllama(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(embeddingsConfig))
	require.NoError(t, err)
	p := newProcessor(NewRoutes(cfg, 1), 1<<20, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	p.ctx = t.Context()
	hr := p.handle(reqHeaders("POST", "/v1/embeddings", false))
	require.Nil(t, hr.GetImmediateResponse())
	assert.NotNil(t, hr.GetModeOverride(), "a translated endpoint reads its response")
	br := p.handle(bodyMsg(`{"model":"ol","input":["a b"],"encoding_format":"float"}`))
	require.Nil(t, br.GetImmediateResponse())
	common := br.GetRequestBody().GetResponse()
	assert.JSONEq(t, `{"model":"nomic-embed-text","input":["a b"],"truncate":false}`, string(common.GetBodyMutation().GetBody()))
	var path string
	for _, h := range common.GetHeaderMutation().GetSetHeaders() {
		if h.GetHeader().GetKey() == ":path" {
			path = string(h.GetHeader().GetRawValue())
		}
	}
	assert.Equal(t, "/api/embed", path)
	require.NotNil(t, p.tx)
	out, status := p.tx.body([]byte(`{"model":"nomic-embed-text","embeddings":[[0.6,0.8]],"prompt_eval_count":2}`), true, 200)
	assert.Equal(t, 200, status)
	assert.JSONEq(t, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.6,0.8]}],"model":"ol","usage":{"prompt_tokens":2,"total_tokens":2}}`, string(out))
	assert.False(t, strings.Contains(string(out), "nomic"), "the upstream name stays upstream")
	p.finish()
}

package extproc

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

func shapedConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(`backends:
  - {name: a, protocol: openai, endpoints: ["127.0.0.1:1"]}
models:
  - name: m
    backend: a
    shaping:
      defaults: {temperature: 0.5, user: gateway}
      max_tokens: 100
      temperature: {min: 0, max: 1}
      top_p: {min: 0.1, max: 0.9}
      drop: [logit_bias]
      forbid: [tools]
      headers: {x-priority: batch}
`))
	require.NoError(t, err)
	return cfg
}

func TestShaperApply(t *testing.T) {
	sh := NewRoutes(shapedConfig(t), 0).byModel["m"].versions[0].Shaping
	require.NotNil(t, sh)
	for name, tc := range map[string]struct{ in, want string }{
		"defaults fill what is absent":  {`{"model":"m"}`, `{"model":"m","temperature":0.5,"user":"gateway"}`},
		"client values win":             {`{"model":"m","temperature":0.2,"user":"u"}`, `{"model":"m","temperature":0.2,"user":"u"}`},
		"max_tokens lowered to ceiling": {`{"model":"m","max_tokens":4000,"max_completion_tokens":50,"temperature":1,"user":"u"}`, `{"model":"m","max_tokens":100,"max_completion_tokens":50,"temperature":1,"user":"u"}`},
		"temperature and top_p clamped": {`{"model":"m","temperature":1.7,"top_p":0.01,"user":"u"}`, `{"model":"m","temperature":1,"top_p":0.1,"user":"u"}`},
		"dropped field removed":         {`{"model":"m","logit_bias":{"1":2},"temperature":0,"user":"u"}`, `{"model":"m","temperature":0,"user":"u"}`},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := sh.apply("m", []byte(tc.in))
			require.NoError(t, err)
			assert.JSONEq(t, tc.want, string(out))
		})
	}
	unchanged := []byte(`{"model":"m","temperature":0.3,"user":"u"}`)
	out, err := sh.apply("m", unchanged)
	require.NoError(t, err)
	assert.Same(t, &unchanged[0], &out[0], "an untouched body is returned as is")

	_, err = sh.apply("m", []byte(`{"model":"m","tools":[]}`))
	require.ErrorIs(t, err, ErrForbiddenField)
}

func TestShapingThroughProcessor(t *testing.T) {
	cfg := shapedConfig(t)
	p := newProcessor(NewRoutes(cfg, 0), 1<<20, discardLog(), nil)
	p.handle(reqHeaders("POST", "/v1/chat/completions", false))
	r := p.handle(bodyMsg(`{"model":"m","max_tokens":9999,"messages":[]}`))
	common := r.GetRequestBody().GetResponse()
	require.NotNil(t, common)
	assert.JSONEq(t, `{"model":"m","max_tokens":100,"messages":[],"temperature":0.5,"user":"gateway"}`, string(common.GetBodyMutation().GetBody()))
	hs := setHeaders(common.GetHeaderMutation())
	assert.Equal(t, "batch", hs["x-priority"])
	assert.Equal(t, itoa(len(common.GetBodyMutation().GetBody())), hs["content-length"])

	p = newProcessor(NewRoutes(cfg, 0), 1<<20, discardLog(), nil)
	p.handle(reqHeaders("POST", "/v1/chat/completions", false))
	status, body := immediateStatus(t, p.handle(bodyMsg(`{"model":"m","tools":[{}],"messages":[]}`)))
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "field_not_allowed", body["error"].(map[string]any)["code"])
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

package extproc

import (
	"io"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

const deadlineYAML = `
gateway:
  first_byte_timeout: 2s
backends:
  - {name: a, protocol: openai, endpoints: ["127.0.0.1:1"]}
  - {name: b, protocol: openai, endpoints: ["127.0.0.1:2"], first_byte_timeout: 1500ms}
  - {name: c, protocol: anthropic, endpoints: ["127.0.0.1:3"]}
models:
  - {name: on-a, backend: a, fallbacks: [b]}
  - {name: on-b, backend: b}
  - {name: claude, backend: c}
`

// TestFirstByteDeadlineHeader: a streaming request gets Envoy's per-try
// timeout header with its backend's deadline (the gateway's when the
// backend sets none; a chain takes its first backend's); a non-streaming
// one, or one without a deadline, gets none.
func TestFirstByteDeadlineHeader(t *testing.T) {
	cfg, err := config.Parse("d.yaml", []byte(deadlineYAML))
	require.NoError(t, err)
	noDeadline := testConfig(t)
	for name, tc := range map[string]struct {
		cfg  *config.Config
		path string
		body string
		want string
	}{
		"gateway default":         {cfg, "/v1/chat/completions", `{"model":"on-a","stream":true,"messages":[]}`, "2000"},
		"backend's own":           {cfg, "/v1/chat/completions", `{"model":"on-b","stream":true,"messages":[]}`, "1500"},
		"translated":              {cfg, "/v1/chat/completions", `{"model":"claude","stream":true,"messages":[{"role":"user","content":"x"}]}`, "2000"},
		"not streaming":           {cfg, "/v1/chat/completions", `{"model":"on-a","messages":[]}`, ""},
		"no deadline configured":  {noDeadline, "/v1/chat/completions", `{"model":"public","stream":true,"messages":[]}`, ""},
		"messages client streams": {cfg, "/v1/messages", `{"model":"on-b","stream":true,"max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, "1500"},
	} {
		t.Run(name, func(t *testing.T) {
			p := newProcessor(NewRoutes(tc.cfg, 1), tc.cfg.Gateway.MaxRequestBodyBytes, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			require.NotNil(t, p.handle(reqHeaders("POST", tc.path, false, "anthropic-version", "2023-06-01")).GetRequestHeaders())
			br := p.handle(bodyMsg(tc.body))
			require.NotNil(t, br.GetRequestBody(), "%v", br)
			hs := setHeaders(br.GetRequestBody().GetResponse().GetHeaderMutation())
			got, ok := hs[contract.PerTryTimeoutHeader]
			if tc.want == "" {
				assert.False(t, ok, "no deadline header: %v", hs)
				return
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

const benchDeadlineYAML = `backends:
  - {name: a, protocol: openai, endpoints: ["127.0.0.1:1"]}
models:
  - {name: bench-model, backend: a}
`

// BenchmarkFirstByteDeadline is one streaming request's ext_proc work
// with and without a first-byte deadline configured: the cost of the
// deadline is one header; without it, one string test.
func BenchmarkFirstByteDeadline(b *testing.B) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for name, yaml := range map[string]string{
		"none":     benchDeadlineYAML,
		"deadline": "gateway: {first_byte_timeout: 2s}\n" + benchDeadlineYAML,
	} {
		cfg, err := config.Parse("b.yaml", []byte(yaml))
		require.NoError(b, err)
		routes := NewRoutes(cfg, 0)
		body := benchBody("bench-model", 1<<10)
		headers, bodyReq := benchHeaders(len(body)), benchBodyRequest(body)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p := newProcessor(routes, cfg.Gateway.MaxRequestBodyBytes, log, nil)
				p.handle(headers)
				if r := p.handle(bodyReq); r.GetRequestBody() == nil {
					b.Fatalf("body answered %v", r)
				}
				p.finish()
			}
		})
	}
}

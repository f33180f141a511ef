package extproc

import (
	"testing"

	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

// BenchmarkTranslatedStreamChunk is one chunk of a chat stream served by an
// Anthropic backend through the response pipeline: translate, meter (on
// the client's side, with limits settling from it), observe.
func BenchmarkTranslatedStreamChunk(b *testing.B) {
	cfg, err := config.Parse("t.yaml", []byte(translationConfig+`limits:
  default_tenant: acme
  tenants:
    - {name: acme, requests_per_minute: 1000000, output_tokens_per_minute: 100000000}
`))
	require.NoError(b, err)
	lim, err := NewLimits(cfg, nil, prometheus.NewRegistry())
	require.NoError(b, err)
	p := newProcessor(NewRoutes(cfg, 1), 1<<20, discardLog(), nil)
	p.ctx, p.limits = b.Context(), lim
	p.handle(requestHeaders("/v1/chat/completions"))
	br := p.handle(requestBody(`{"model":"sonnet","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	require.Nil(b, br.GetImmediateResponse())
	p.handle(respHeaders("200", "text/event-stream"))
	p.handle(respBody("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":3}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n", false))
	chunk := &extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocsvcv3.HttpBody{
		Body: []byte("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"tok1 \"}}\n\n"),
	}}}
	b.ReportAllocs()
	for b.Loop() {
		if r := p.handle(chunk); len(r.GetResponseBody().GetResponse().GetBodyMutation().GetBody()) == 0 {
			b.Fatalf("chunk answered %v", r)
		}
	}
	b.StopTimer()
	p.finish()
}

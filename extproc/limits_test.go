package extproc

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

const limitedYAML = `backends:
  - {name: a, protocol: openai, endpoints: ["127.0.0.1:1"]}
models:
  - {name: m, backend: a}
limits:
  default_tenant: acme
  tenants:
    - {name: acme, requests_per_minute: 100, output_tokens_per_minute: 100000}
`

func limitedProcessor(t *testing.T, yaml string) *processor {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(yaml))
	require.NoError(t, err)
	lim, err := NewLimits(cfg, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	p := newProcessor(NewRoutes(cfg, 1), 1<<20, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	p.ctx, p.limits = t.Context(), lim
	return p
}

// withStatus is a response body message carrying the status attribute, as
// Envoy sends the first response message of a request that skipped the
// response headers phase.
func withStatus(m *extprocsvcv3.ProcessingRequest, status float64) *extprocsvcv3.ProcessingRequest {
	m.Attributes = map[string]*structpb.Struct{contract.ExtProcFilter: {Fields: map[string]*structpb.Value{
		contract.ResponseCodeAttribute: structpb.NewNumberValue(status),
	}}}
	return m
}

// TestLimitedStreamSkipsResponseHeaders: a limited request on a path with
// no translation asks for the response body only; the x-ratelimit-*
// values go out as dynamic metadata for the route, the status comes with
// the first chunk, and the usage read from the stream settles the
// reservation (the chunk the gateway asked for is stripped).
func TestLimitedStreamSkipsResponseHeaders(t *testing.T) {
	p := limitedProcessor(t, limitedYAML)
	hr := p.handle(reqHeaders("POST", "/v1/chat/completions", false))
	mo := hr.GetModeOverride()
	require.NotNil(t, mo)
	assert.Equal(t, extprocv3.ProcessingMode_SKIP, mo.GetResponseHeaderMode())
	assert.Equal(t, extprocv3.ProcessingMode_STREAMED, mo.GetResponseBodyMode())

	br := p.handle(bodyMsg(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	require.Nil(t, br.GetImmediateResponse())
	assert.False(t, p.done(br), "the stream stays open for the response body")
	md := br.GetDynamicMetadata().GetFields()[contract.MetadataNamespace].GetStructValue().GetFields()
	assert.Equal(t, "100", md["x-ratelimit-limit-requests"].GetStringValue())
	assert.Equal(t, "99", md["x-ratelimit-remaining-requests"].GetStringValue())
	assert.NotEmpty(t, md["x-ratelimit-limit-tokens"].GetStringValue())
	for k := range md {
		if strings.HasPrefix(k, "x-ratelimit-") {
			assert.Contains(t, contract.RateLimitHeaders, k, "the route copies every key Streamgate sets")
		}
	}

	i := strings.Index(usageStream, `data: {"model":"private","choices":[]`)
	first := p.handle(withStatus(respBody(usageStream[:i], false), 200))
	assert.Nil(t, first.GetResponseBody().GetResponse(), "content passes unchanged")
	assert.Equal(t, 200, p.status)
	last := p.handle(respBody(usageStream[i:], true))
	assert.Equal(t, "data: [DONE]\n\n", string(last.GetResponseBody().GetResponse().GetBodyMutation().GetBody()))
	require.NotNil(t, p.lim)
	assert.Nil(t, p.lim.res, "the reservation is settled at the end of the stream")
	u, ok := p.meter.stream.Usage()
	require.True(t, ok)
	assert.EqualValues(t, 11, u.Input)
	assert.EqualValues(t, 5, u.Output)
}

// TestLimitedErrorBodyIsReadAsJSON: an error answer to a stream request is
// JSON; it is metered as a body and changes nothing.
func TestLimitedErrorBodyIsReadAsJSON(t *testing.T) {
	p := limitedProcessor(t, limitedYAML)
	p.handle(reqHeaders("POST", "/v1/chat/completions", false))
	p.handle(bodyMsg(`{"model":"m","stream":true,"messages":[]}`))
	r := p.handle(withStatus(respBody(`{"error":{"message":"overloaded"}}`, true), 503))
	assert.Nil(t, r.GetResponseBody().GetResponse())
	assert.Equal(t, 503, p.status)
	assert.NotNil(t, p.meter.body)
	assert.Nil(t, p.lim.res)
}

// TestLimitedWithoutReservationEndsEarly: a tenant no limit applies to
// holds nothing, so its response is left alone: the ext_proc stream ends
// after the body answer, and no x-ratelimit-* value is set.
func TestLimitedWithoutReservationEndsEarly(t *testing.T) {
	p := limitedProcessor(t, strings.Replace(limitedYAML, "default_tenant: acme", "default_tenant: unlisted", 1))
	p.handle(reqHeaders("POST", "/v1/chat/completions", false))
	br := p.handle(bodyMsg(`{"model":"m","messages":[]}`))
	require.Nil(t, br.GetImmediateResponse())
	assert.True(t, p.done(br))
	md := br.GetDynamicMetadata().GetFields()[contract.MetadataNamespace].GetStructValue().GetFields()
	assert.NotContains(t, md, "x-ratelimit-limit-requests")
}

// TestLimitedTranslatedPathKeepsResponseHeaders: where a model on the path
// is translated, the response headers phase stays (translation needs it).
func TestLimitedTranslatedPathKeepsResponseHeaders(t *testing.T) {
	p := limitedProcessor(t, strings.Replace(limitedYAML, "models:", `  - {name: b, protocol: anthropic, endpoints: ["127.0.0.1:2"]}
models:
  - {name: claude, backend: b}`, 1))
	hr := p.handle(reqHeaders("POST", "/v1/chat/completions", false))
	assert.Equal(t, extprocv3.ProcessingMode_SEND, hr.GetModeOverride().GetResponseHeaderMode())
	assert.NotEqual(t, readBody, p.plan.read)
}

package extproc

import (
	"strings"
	"sync/atomic"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

// planCase is one request through the plan: what is configured, what the
// client sends, what the backend answers, and the plan and modes expected.
type planCase struct {
	limits, usage, anthropic, envoy bool
	// slots caps the tenant's concurrent streams.
	slots               bool
	path, model         string
	stream              bool
	status, contentType string

	read                               responseRead
	translate, settle, strip, reported bool
	side                               meterSide
	endsAtBody                         bool
	requestMode, responseMode          *extprocv3.ProcessingMode
	meterStream, meterBody, sendsRespH bool
}

// planConfig is an openai backend serving m and, with anthropic, an
// anthropic backend serving claude (which makes chat paths translated).
func planConfig(t *testing.T, tc planCase) *config.Config {
	t.Helper()
	y := "backends:\n  - {name: a, protocol: openai, endpoints: [\"127.0.0.1:1\"]}\n"
	models := "models:\n  - {name: m, backend: a}\n"
	if tc.anthropic {
		y += "  - {name: b, protocol: anthropic, endpoints: [\"127.0.0.1:2\"]}\n"
		models += "  - {name: claude, backend: b}\n"
	}
	y += models
	if tc.limits {
		slots := ""
		if tc.slots {
			slots = ", concurrent_streams: 2"
		}
		y += "limits:\n  default_tenant: acme\n  tenants:\n    - {name: acme, requests_per_minute: 100, output_tokens_per_minute: 100000" + slots + "}\n"
	}
	if tc.usage {
		y += "telemetry:\n  usage: true\n"
	}
	cfg, err := config.Parse("t.yaml", []byte(y))
	require.NoError(t, err)
	return cfg
}

func planCases() map[string]planCase {
	chat := "/v1/chat/completions"
	return map[string]planCase{
		"nothing configured passes through": {path: chat, model: "m", read: readNone, endsAtBody: true},
		"limits on a stream read the body only and strip the usage they asked for": {
			limits: true, path: chat, model: "m", stream: true,
			read: readBody, settle: true, strip: true, requestMode: modeBodyOnly, meterStream: true,
		},
		"limits where Envoy reads usage hand a non-streamed response over": {
			limits: true, envoy: true, path: chat, model: "m",
			read: readNone, settle: true, reported: true, endsAtBody: true,
		},
		"a concurrency cap keeps a stream on the main filter: its end frees the slot": {
			limits: true, envoy: true, slots: true, path: chat, model: "m", stream: true,
			read: readBody, settle: true, strip: true, requestMode: modeBodyOnly, meterStream: true,
		},
		"limits inline keep a non-streamed response": {
			limits: true, path: chat, model: "m",
			read: readBody, settle: true, requestMode: modeBodyOnly, meterBody: true,
		},
		"a stripped stream is handed over too: the strip filter strips": {
			limits: true, envoy: true, path: chat, model: "m", stream: true,
			read: readNone, settle: true, strip: true, reported: true, endsAtBody: true,
		},
		"telemetry usage where Envoy reads is handed over": {
			usage: true, envoy: true, path: chat, model: "m", stream: true,
			read: readNone, strip: true, reported: true, endsAtBody: true,
		},
		"where Envoy reads, a translated stream stays on the main filter": {
			limits: true, envoy: true, anthropic: true, path: chat, model: "claude", stream: true, status: "200", contentType: "text/event-stream",
			read: readHeaders, translate: true, settle: true, strip: true, requestMode: modeResponseHeaders, sendsRespH: true,
			responseMode: modeStreamed, meterStream: true,
		},
		"where Envoy reads, a native model on a translated path is handed over": {
			limits: true, envoy: true, anthropic: true, path: chat, model: "m",
			read: readHeaders, settle: true, reported: true, endsAtBody: true, requestMode: modeResponseHeaders,
		},
		"telemetry usage reads the headers then streams a successful body": {
			usage: true, path: chat, model: "m", stream: true, status: "200", contentType: "text/event-stream",
			read: readHeaders, strip: true, requestMode: modeResponseHeaders, sendsRespH: true,
			responseMode: modeStreamed, meterStream: true,
		},
		"telemetry usage leaves a failed body unread": {
			usage: true, path: chat, model: "m", status: "500", contentType: "application/json",
			read: readHeaders, requestMode: modeResponseHeaders, sendsRespH: true,
		},
		"limits and telemetry share one meter": {
			limits: true, usage: true, path: chat, model: "m", status: "200", contentType: "application/json",
			read: readHeaders, settle: true, requestMode: modeResponseHeaders, sendsRespH: true,
			responseMode: modeStreamed, meterBody: true,
		},
		"a translated stream is streamed and metered on the client side": {
			anthropic: true, path: chat, model: "claude", stream: true, status: "200", contentType: "text/event-stream",
			read: readHeaders, translate: true, requestMode: modeResponseHeaders, sendsRespH: true, responseMode: modeStreamed,
		},
		"a translated answer is buffered": {
			anthropic: true, path: chat, model: "claude", status: "200", contentType: "application/json",
			read: readHeaders, translate: true, requestMode: modeResponseHeaders, sendsRespH: true, responseMode: modeBuffered,
		},
		"limits on a translated stream meter the client's events": {
			limits: true, anthropic: true, path: chat, model: "claude", stream: true, status: "200", contentType: "text/event-stream",
			read: readHeaders, translate: true, settle: true, strip: true, requestMode: modeResponseHeaders, sendsRespH: true,
			responseMode: modeStreamed, meterStream: true,
		},
		"limits on /v1/messages to an openai backend meter the backend's bytes": {
			limits: true, path: "/v1/messages", model: "m", stream: true, status: "200", contentType: "text/event-stream",
			read: readHeaders, translate: true, settle: true, side: meterBackend, requestMode: modeResponseHeaders, sendsRespH: true,
			responseMode: modeStreamed, meterStream: true,
		},
		"a native model on a translated path reads only the headers": {
			anthropic: true, path: chat, model: "m", status: "200", contentType: "application/json",
			read: readHeaders, requestMode: modeResponseHeaders, sendsRespH: true,
		},
	}
}

// TestResponsePlan drives requests through the request phases and the
// response headers (or first body chunk) and checks the plan decided and
// the processing modes Envoy gets, all from responsePlan.mode.
func TestResponsePlan(t *testing.T) {
	for name, tc := range planCases() {
		t.Run(name, func(t *testing.T) {
			cfg := planConfig(t, tc)
			g := (&generation{}).withConfig(cfg, NewRoutes(cfg, 1), nil, nil)
			if tc.limits {
				lim, err := NewLimits(cfg, nil, prometheus.NewRegistry())
				require.NoError(t, err)
				g.limits = lim
			}
			p := g.processor(t.Context(), discardLog(), nil)
			p.reports, p.envoyReads = newReports(discardLog(), new(atomic.Int64)), tc.envoy
			defer p.finish()

			hr := p.handle(reqHeaders("POST", tc.path, false))
			require.Nil(t, hr.GetImmediateResponse())
			assert.Equal(t, tc.read, p.plan.read, "read")
			assert.Same(t, tc.requestMode, hr.GetModeOverride(), "request headers mode")

			body := `{"model":"` + tc.model + `","max_tokens":5,"messages":[{"role":"user","content":"hi"}]` +
				map[bool]string{true: `,"stream":true}`, false: `}`}[tc.stream]
			br := p.handle(bodyMsg(body))
			require.Nil(t, br.GetImmediateResponse(), "%v", br.GetImmediateResponse().GetBody())
			assert.Equal(t, tc.translate, p.plan.translate, "translate")
			assert.Equal(t, tc.settle, p.plan.settle, "settle")
			assert.Equal(t, tc.strip, p.plan.strip, "strip")
			assert.Equal(t, tc.reported, p.plan.report, "report")
			assert.Equal(t, tc.reported, p.reportKey != "", "report key")
			assert.Equal(t, tc.side, p.plan.side, "meter side")
			assert.Equal(t, tc.endsAtBody, p.done(br), "ends at the body answer")
			if !tc.translate { // a translator writes its own stream options
				upstream := string(br.GetRequestBody().GetResponse().GetBodyMutation().GetBody())
				assert.Equal(t, tc.strip, strings.Contains(upstream, `"include_usage":true`), "include_usage added once, with strip")
			}

			switch {
			case tc.reported:
				return // the rest is the report's (TestUsageReport*)
			case tc.sendsRespH:
				rh := p.handle(respHeaders(tc.status, tc.contentType))
				assert.Same(t, tc.responseMode, rh.GetModeOverride(), "response headers mode")
			case tc.read == readBody:
				first := `{"usage":{"prompt_tokens":1,"completion_tokens":2}}`
				if tc.stream {
					first = "data: {}\n\n"
				}
				p.handle(withStatus(respBody(first, false), 200))
				assert.Equal(t, bodyStreamed, p.plan.body)
			}
			assert.Equal(t, tc.meterStream, p.meter.stream != nil, "stream meter")
			assert.Equal(t, tc.meterBody, p.meter.body != nil, "body meter")
		})
	}
}

// TestGRPCPlanModes: a gRPC call's mode comes from the plan too: no
// response phase, or the trailers when it holds a limits slot.
func TestGRPCPlanModes(t *testing.T) {
	for name, tc := range map[string]struct {
		plan responsePlan
		want *extprocv3.ProcessingMode
	}{
		"routed":       {responsePlan{read: readGRPC}, grpcStreamMode},
		"holding slot": {responsePlan{read: readGRPCTrailers, settle: true}, grpcHeldMode},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Same(t, tc.want, tc.plan.mode(atRequestHeaders))
			assert.Nil(t, tc.plan.mode(atResponseHeaders))
		})
	}
}

// TestLimitsAndTelemetryReadOneMeter: with limits and telemetry usage both
// on, one meter reads the stream: the usage chunk the gateway asked for is
// stripped once, and the reservation is settled with the same usage
// telemetry reports.
func TestLimitsAndTelemetryReadOneMeter(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(strings.Replace(limitedYAML, "models:\n  - {name: m, backend: a}", "models:\n  - {name: public, backend: a, upstream_model: private}", 1)+"telemetry:\n  usage: true\n"))
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	g := (&generation{}).withConfig(cfg, NewRoutes(cfg, 1), nil, nil)
	g.limits, err = NewLimits(cfg, nil, reg)
	require.NoError(t, err)
	p := g.processor(t.Context(), discardLog(), NewMetrics(reg))

	p.handle(reqHeaders("POST", "/v1/chat/completions", false))
	br := p.handle(bodyMsg(`{"model":"public","stream":true,"messages":[]}`))
	require.Nil(t, br.GetImmediateResponse())
	assert.Equal(t, 1, strings.Count(string(br.GetRequestBody().GetResponse().GetBodyMutation().GetBody()), "include_usage"))
	require.True(t, p.plan.settle && p.plan.strip && p.plan.usage)
	p.handle(respHeaders("200", "text/event-stream"))
	require.NotNil(t, p.meter.stream)
	require.Nil(t, p.meter.body)

	i := strings.Index(usageStream, "data: {\"model\":\"private\",\"choices\":[]")
	p.handle(respBody(usageStream[:i], false))
	last := p.handle(respBody(usageStream[i:], true))
	assert.Equal(t, "data: [DONE]\n\n", string(last.GetResponseBody().GetResponse().GetBodyMutation().GetBody()))
	md := last.GetDynamicMetadata().GetFields()[contract.MetadataNamespace].GetStructValue().GetFields()
	assert.InDelta(t, 5, md[contract.MetaOutputTokens].GetNumberValue(), 0, "telemetry reads the meter")
	assert.Nil(t, p.lim.res, "settled at the end of the body")
	assert.InDelta(t, 5, reconciledOutput(t, reg), 0, "the reservation is settled from the same meter")
	p.finish()
}

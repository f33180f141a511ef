package extproc

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

// meteredProcessor is limitedProcessor with its limiter and server metrics
// in reg.
func meteredProcessor(t *testing.T) (*processor, *prometheus.Registry) {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(limitedYAML))
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	lim, err := NewLimits(cfg, nil, reg)
	require.NoError(t, err)
	p := newProcessor(NewRoutes(cfg, 1), 1<<20, slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(reg))
	p.ctx, p.limits = t.Context(), lim
	return p, reg
}

// reconciledOutput is streamgate_tokens_reconciled_total{direction="output"}.
func reconciledOutput(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	n, err := testutil.GatherAndCount(reg, "streamgate_tokens_reconciled_total")
	require.NoError(t, err)
	require.Positive(t, n)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == "streamgate_tokens_reconciled_total" && m.GetLabel()[0].GetValue() == "output" {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// bigCompletion is a non-streamed chat completion of about size bytes with
// usage at its end, as OpenAI sends it.
func bigCompletion(size, output int) string {
	content := strings.Repeat("token ", size/6)
	return `{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"` +
		content + `"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":` + itoa(output) + `,"total_tokens":1}}`
}

// feedResponse sends body as the response of p's request in 64 KiB chunks,
// the first with status; with complete false the last chunk never comes.
func feedResponse(p *processor, status int, body string, complete bool) {
	const chunk = 64 << 10
	for i := 0; i < len(body); i += chunk {
		end := i+chunk >= len(body)
		if end && !complete {
			return
		}
		m := respBody(body[i:min(i+chunk, len(body))], end)
		if i == 0 {
			m = withStatus(m, float64(status))
		}
		p.handle(m)
	}
}

// TestLargeResponseIsChargedItsUsage: a non-streamed response over 1 MiB
// is charged the output tokens its usage reports (issue 23, finding 4: it
// was charged 0).
func TestLargeResponseIsChargedItsUsage(t *testing.T) {
	p, reg := meteredProcessor(t)
	p.handle(reqHeaders("POST", "/v1/chat/completions", false))
	require.Nil(t, p.handle(bodyMsg(`{"model":"m","max_tokens":50000,"messages":[{"role":"user","content":"hi"}]}`)).GetImmediateResponse())
	body := bigCompletion(3<<20, 42424)
	require.Greater(t, len(body), 2<<20)
	feedResponse(p, 200, body, true)
	assert.Nil(t, p.lim.res, "settled at the end of the body")
	assert.InDelta(t, 42424, reconciledOutput(t, reg), 0)
	assert.InDelta(t, 0, testutil.ToFloat64(p.metrics.unread.WithLabelValues("missing")), 0)
}

// TestUnreadUsageChargesReservation: a successful non-streamed response
// whose usage cannot be read is charged its reserved output and counted;
// a failed one is charged nothing.
func TestUnreadUsageChargesReservation(t *testing.T) {
	for name, tc := range map[string]struct {
		status   int
		body     string
		complete bool
		want     float64
		reason   string
	}{
		"no usage":      {status: 200, body: `{"choices":[{"message":{"content":"hi"}}]}`, complete: true, want: 700, reason: "missing"},
		"not json":      {status: 200, body: `plain text`, complete: true, want: 700, reason: "missing"},
		"cut short":     {status: 200, body: bigCompletion(1<<20, 5), want: 700, reason: "incomplete"},
		"backend error": {status: 503, body: `{"error":{"message":"overloaded"}}`, complete: true},
	} {
		t.Run(name, func(t *testing.T) {
			p, reg := meteredProcessor(t)
			p.handle(reqHeaders("POST", "/v1/chat/completions", false))
			require.Nil(t, p.handle(bodyMsg(`{"model":"m","max_tokens":700,"messages":[]}`)).GetImmediateResponse())
			feedResponse(p, tc.status, tc.body, tc.complete)
			p.finish()
			assert.InDelta(t, tc.want, reconciledOutput(t, reg), 0)
			for _, r := range []string{"missing", "incomplete"} {
				want := 0.0
				if r == tc.reason {
					want = 1
				}
				assert.InDelta(t, want, testutil.ToFloat64(p.metrics.unread.WithLabelValues(r)), 0, r)
			}
		})
	}
}

// TestTelemetryReadsUsageOfLargeResponse: the meter telemetry starts (no
// limits) reads the usage of a non-streamed response over 1 MiB too, so
// gen_ai_client_token_usage and the access log see it (issue 23, finding 4).
func TestTelemetryReadsUsageOfLargeResponse(t *testing.T) {
	p, _, _ := telemetryProcessor(t, "")
	p.handle(reqHeaders("POST", "/v1/chat/completions", false))
	require.Nil(t, p.handle(bodyMsg(`{"model":"public","messages":[]}`)).GetImmediateResponse())
	p.handle(respHeaders("200", "application/json"))
	body := bigCompletion(2<<20, 31337)
	const chunk = 64 << 10
	for i := 0; i < len(body); i += chunk {
		p.handle(respBody(body[i:min(i+chunk, len(body))], i+chunk >= len(body)))
	}
	r := p.record()
	require.True(t, r.UsageKnown)
	assert.EqualValues(t, 31337, r.OutputTokens)
	assert.EqualValues(t, 9, r.InputTokens)
}

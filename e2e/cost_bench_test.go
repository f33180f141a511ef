package e2e

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The data-path costs docs/limits.md, docs/observability.md and
// docs/translation.md quote. They measure and assert nothing, so they are
// benchmarks (make e2e-bench), not tests: on a shared 2-core machine a
// timing they asserted would flake, and a figure a test only logs is never
// looked at.

// streamOnce posts a streaming chat request for tokens tokens itlMS apart
// to e and reads it to the end; it returns the time to the first byte.
func streamOnce(b *testing.B, e *env, model string, tokens, itlMS int) time.Duration {
	b.Helper()
	start := time.Now()
	resp, err := postTo(b.Context(), e, chatBody(model, true, "go"), map[string]string{
		"x-fakellm-tokens": strconv.Itoa(tokens), "x-fakellm-itl-ms": strconv.Itoa(itlMS)})
	require.NoError(b, err)
	defer resp.Body.Close()
	require.Equal(b, http.StatusOK, resp.StatusCode)
	buf := make([]byte, 1)
	_, err = io.ReadFull(resp.Body, buf)
	require.NoError(b, err)
	ttfb := time.Since(start)
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(b, err)
	return ttfb
}

// benchStreams runs one sub-benchmark per target, each iteration a whole
// stream, and reports the time to the first byte next to the stream's.
func benchStreams(b *testing.B, targets []struct {
	name  string
	e     *env
	model string
}, tokens, itlMS int) {
	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) {
			var ttfb time.Duration
			for b.Loop() {
				ttfb += streamOnce(b, tg.e, tg.model, tokens, itlMS)
			}
			b.ReportMetric(float64(ttfb.Microseconds())/float64(b.N), "µs-first-byte/op")
		})
	}
}

// BenchmarkLimitsStreamCost: what limits cost a 50-chunk stream with 2 ms
// between chunks, against the shared gateway without limits. The limited
// gateway runs the default read_usage (Envoy reads the usage; the client
// does not ask for usage, so the Lua filter strips the chunk the gateway
// asked for); with read_usage: inline it measures the main filter (STREAMED,
// one ext_proc round trip per chunk). The difference of the two ns/op
// divided by 50 is the cost per chunk.
func BenchmarkLimitsStreamCost(b *testing.B) {
	e, _ := limitsGateway(b)
	benchStreams(b, []struct {
		name  string
		e     *env
		model string
	}{{"no limits", gw, "model-b"}, {"limited", e, "model-b"}}, 50, 2)
}

// BenchmarkTelemetryStreamCost: what reading every response
// (telemetry.usage, on in the shared gateway, where Envoy reads these chat
// streams' usage) costs a 100-chunk stream with 1 ms between chunks,
// against a gateway with it off.
func BenchmarkTelemetryStreamCost(b *testing.B) {
	off := startGateway(b, strings.Replace(defaultConfig, "  usage: true\n", "  usage: false\n", 1))
	benchStreams(b, []struct {
		name  string
		e     *env
		model string
	}{{"usage off", off, "model-b"}, {"usage on", gw, "model-b"}}, 100, 1)
}

// BenchmarkTranslatedFirstEvent: time to the first event of a one-token
// stream passed through, passed through on a config that translates other
// models, and translated (Anthropic backend, OpenAI client).
func BenchmarkTranslatedFirstEvent(b *testing.B) {
	g := startGateway(b, translateConfig)
	for _, tc := range []struct{ name, url, model string }{
		{"pass-through", gw.gateway, "model-b"},
		{"pass-through on a translating config", g.gateway, "gpt-model"},
		{"translated", g.gateway, "claude-model"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				r, err := http.Post(tc.url+"/v1/chat/completions", "application/json", strings.NewReader(
					`{"model":"`+tc.model+`","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
				require.NoError(b, err)
				_, err = newSSEReader(r.Body).next()
				require.NoError(b, err)
				r.Body.Close()
			}
		})
	}
}

package telemetry

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/streamgate/streamgate/config"
)

func TestRecordTimings(t *testing.T) {
	t0 := time.Unix(100, 0)
	for name, tc := range map[string]struct {
		r        Record
		errType  string
		duration time.Duration
		ttft     time.Duration
		ttftOK   bool
		tpot     time.Duration
		tpotOK   bool
	}{
		"stream": {
			r:        Record{Operation: OperationChat, Stream: true, Status: 200, Start: t0, FirstByte: t0.Add(100 * time.Millisecond), End: t0.Add(1100 * time.Millisecond), UsageKnown: true, OutputTokens: 11},
			duration: 1100 * time.Millisecond, ttft: 100 * time.Millisecond, ttftOK: true, tpot: 100 * time.Millisecond, tpotOK: true,
		},
		"one output token has no time per token": {
			r:        Record{Operation: OperationChat, Stream: true, Status: 200, Start: t0, FirstByte: t0.Add(time.Second), End: t0.Add(2 * time.Second), UsageKnown: true, OutputTokens: 1},
			duration: 2 * time.Second, ttft: time.Second, ttftOK: true,
		},
		"not streamed": {
			r:        Record{Operation: OperationChat, Status: 200, Start: t0, FirstByte: t0.Add(time.Second), End: t0.Add(time.Second), UsageKnown: true, OutputTokens: 50},
			duration: time.Second, ttft: time.Second, ttftOK: true,
		},
		"refused": {
			r:       Record{Operation: OperationChat, Status: 429, Refusal: "rate_limit_exceeded", Start: t0, End: t0.Add(time.Millisecond)},
			errType: "rate_limit_exceeded", duration: time.Millisecond,
		},
		"backend error": {
			r:       Record{Operation: OperationChat, Status: 503, Start: t0, FirstByte: t0.Add(time.Millisecond), End: t0.Add(2 * time.Millisecond)},
			errType: "503", duration: 2 * time.Millisecond,
		},
		"client went away": {
			r:       Record{Operation: OperationChat, Stream: true, Status: 200, Start: t0, FirstByte: t0.Add(time.Millisecond), Finished: t0.Add(time.Second)},
			errType: "incomplete", duration: time.Second,
		},
		"embeddings have no first token": {
			r:        Record{Operation: OperationEmbeddings, Status: 200, Start: t0, FirstByte: t0.Add(time.Millisecond), End: t0.Add(time.Millisecond)},
			duration: time.Millisecond,
		},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.errType, tc.r.ErrorType())
			assert.Equal(t, tc.duration, tc.r.Duration())
			ttft, ok := tc.r.TTFT()
			assert.Equal(t, tc.ttftOK, ok)
			assert.Equal(t, tc.ttft, ttft)
			tpot, ok := tc.r.TimePerOutputToken()
			assert.Equal(t, tc.tpotOK, ok)
			assert.Equal(t, tc.tpot, tpot)
		})
	}
}

func TestPricesCost(t *testing.T) {
	p := Prices{"m": config.Price{InputPerMillion: 3, OutputPerMillion: 15}}
	assert.InDelta(t, 3.0+7.5, p.Cost("m", 1_000_000, 500_000), 1e-12)
	assert.InDelta(t, 0, p.Cost("unpriced", 1_000_000, 1), 0)
	assert.InDelta(t, 0, Prices(nil).Cost("m", 1, 1), 0)
}

func TestEventOfCarriesNoPromptFields(t *testing.T) {
	t0 := time.Unix(100, 0)
	r := &Record{RequestID: "r1", Tenant: "acme", Endpoint: "/v1/chat/completions", Operation: OperationChat, Model: "m", Status: 200,
		Start: t0, FirstByte: t0.Add(20 * time.Millisecond), End: t0.Add(120 * time.Millisecond), UsageKnown: true, InputTokens: 7, OutputTokens: 9, CostUSD: 0.5}
	ev := EventOf(r)
	assert.Equal(t, Event{RequestID: "r1", Time: t0.UTC(), Tenant: "acme", Endpoint: "/v1/chat/completions", Model: "m", Status: 200,
		UsageKnown: true, InputTokens: 7, OutputTokens: 9, CostUSD: 0.5, TTFTMs: 20, DurationMs: 120}, ev)
}

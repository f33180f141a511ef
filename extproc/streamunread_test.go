package extproc

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOversizedStreamEventChargesReservation: a streamed response with an
// event past the meter's 1 MiB bound stops the meter; it used to settle on
// the few deltas counted before that event, so a backend (or a response
// shaped to) could generate far more than it was charged. It is now
// charged at least its reserved output and counted as too_large; a stream
// the meter reads whole is charged its usage as before.
func TestOversizedStreamEventChargesReservation(t *testing.T) {
	delta := "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"abcd\"}}]}\n\n"
	usage := "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":7}}\n\n"
	big := "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" + strings.Repeat("x", 2<<20) + "\"}}]}\n\n"
	for name, tc := range map[string]struct {
		body     string
		want     float64
		tooLarge float64
	}{
		"oversized event":   {body: delta + big + usage + "data: [DONE]\n\n", want: 700, tooLarge: 1},
		"stream read whole": {body: delta + usage + "data: [DONE]\n\n", want: 7},
	} {
		t.Run(name, func(t *testing.T) {
			p, reg := meteredProcessor(t)
			p.handle(reqHeaders("POST", "/v1/chat/completions", false))
			require.Nil(t, p.handle(bodyMsg(`{"model":"m","stream":true,"max_tokens":700,"messages":[]}`)).GetImmediateResponse())
			feedResponse(p, 200, tc.body, true)
			require.NotNil(t, p.meter.stream, "the response was metered as a stream")
			assert.Nil(t, p.lim.res, "settled at the end of the body")
			assert.InDelta(t, tc.want, reconciledOutput(t, reg), 0)
			assert.InDelta(t, tc.tooLarge, testutil.ToFloat64(p.metrics.unread.WithLabelValues(unreadTooLarge)), 0)
		})
	}
}

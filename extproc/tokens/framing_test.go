package tokens

import (
	"strings"
	"testing"

	"github.com/streamgate/streamgate/extproc/sse"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// reframe rewrites an LF-framed stream: every line ends in lineEnd and
// every blank line that ends an event is blank.
func reframe(s, lineEnd, blank string) string {
	var b strings.Builder
	for _, ev := range strings.SplitAfter(s, "\n\n") {
		if ev == "" {
			continue
		}
		for _, line := range strings.Split(strings.TrimSuffix(ev, "\n\n"), "\n") {
			b.WriteString(line + lineEnd)
		}
		b.WriteString(blank)
	}
	return b.String()
}

// TestStreamMeterReadsUsageInEveryFraming: the meter used to split events
// on "\n\n" and "\r\n\r\n" only, so a usage chunk framed with CR line ends
// or an LF line followed by a CRLF blank line (legal SSE, which
// sse.Decoder reads) was missed and the reservation settled on the
// estimate. Every framing is read, stripped and forwarded alike.
func TestStreamMeterReadsUsageInEveryFraming(t *testing.T) {
	for name, f := range map[string]struct{ lineEnd, blank string }{
		"LF":           {"\n", "\n"},
		"CRLF":         {"\r\n", "\r\n"},
		"CR":           {"\r", "\r"},
		"LF then CRLF": {"\n", "\r\n"},
		"CRLF then LF": {"\r\n", "\n"},
		"LF then CR":   {"\n", "\r"},
		"CRLF then CR": {"\r\n", "\r"},
		"CR then CRLF": {"\r", "\r\n"},
	} {
		t.Run(name, func(t *testing.T) {
			stream := reframe(evA+evB+evUsage+evDone, f.lineEnd, f.blank)
			want := reframe(evA+evB+evDone, f.lineEnd, f.blank)
			for cut := 0; cut <= len(stream); cut++ {
				m := &StreamMeter{Strip: true, Counter: &Counter{charsPerToken: 4}}
				got := feedSplit(m, stream, []int{cut})
				u, ok := m.Usage()
				require.True(t, ok, "usage missed, cut at %d", cut)
				require.Equal(t, Usage{Input: 11, Output: 7}, u)
				require.Equal(t, int64(3), m.Counted(), "cut at %d", cut)
				require.Equal(t, decodeAll(t, want), decodeAll(t, got), "cut at %d", cut)
			}
		})
	}
}

// TestStreamMeterReadsLastEventWithoutBlankLine: a stream may end without
// the blank line after its last event; sse.Decoder still dispatches it on
// Close, and so does the meter.
func TestStreamMeterReadsLastEventWithoutBlankLine(t *testing.T) {
	stream := evA + strings.TrimSuffix(evUsage, "\n\n")
	m := &StreamMeter{Strip: true}
	got := feedSplit(m, stream, []int{len(evA) + 3})
	_, ok := m.Usage()
	assert.True(t, ok)
	assert.Equal(t, evA, got)
}

// TestStreamMeterTruncatedPastBound: an event past the bound stops the
// meter, which says so, and what it forwards is the stream unchanged.
func TestStreamMeterTruncatedPastBound(t *testing.T) {
	big := "data: {\"choices\":[{\"delta\":{\"content\":\"" + strings.Repeat("x", maxPending) + "\"}}]}\n\n"
	stream := evA + big + evUsage
	m := &StreamMeter{Strip: true, Counter: &Counter{charsPerToken: 4}}
	got := feedSplit(m, stream, []int{len(evA) + 10, len(evA) + maxPending + 5})
	assert.True(t, m.Truncated())
	_, ok := m.Usage()
	assert.False(t, ok, "nothing past the oversized event is read")
	assert.Equal(t, int64(1), m.Counted())
	assert.True(t, stream == got, "the stream passes unchanged")
}

// decoded is what a client's sse.Decoder reads from a stream: each event's
// data, with a "usage": null member removed (the meter removes it when it
// strips, on single-line events only, so both sides are normalized).
func decodeAll(t testing.TB, s string) []string {
	var d sse.Decoder
	d.Feed([]byte(s))
	d.Close()
	var out []string
	for {
		ev, ok, err := d.Next()
		require.NoError(t, err)
		if !ok {
			return out
		}
		out = append(out, normalize(ev.Data))
	}
}

func normalize(data []byte) string {
	p := strings.TrimLeft(string(data), " \t\r\n")
	if strings.HasPrefix(p, "{") {
		if u := gjson.Get(p, "usage"); u.Exists() && u.Type == gjson.Null {
			if q, err := sjson.Delete(p, "usage"); err == nil {
				return q
			}
		}
	}
	return string(data)
}

// reference reads a stream with sse.Decoder the way the meter must: the
// usage of the last event reporting one, the first model named, the deltas
// counted, and the events a stripping meter forwards.
type reference struct {
	usage   Usage
	found   bool
	model   string
	counted int64
	kept    []string
}

func referenceRead(t testing.TB, s string, c *Counter) reference {
	var r reference
	var d sse.Decoder
	d.Feed([]byte(s))
	d.Close()
	for {
		ev, ok, err := d.Next()
		require.NoError(t, err)
		if !ok {
			return r
		}
		p := strings.TrimLeft(string(ev.Data), " \t\r\n")
		usageOnly := false
		if strings.HasPrefix(p, "{") {
			if r.model == "" {
				r.model = gjson.Get(p, "model").Str
			}
			if u, ok := ParseUsage(gjson.Get(p, "usage")); ok {
				r.usage, r.found = u, true
				ch := gjson.Get(p, "choices")
				usageOnly = !ch.Exists() || ch.IsArray() && len(ch.Array()) == 0
			}
			gjson.Get(p, "choices").ForEach(func(_, ch gjson.Result) bool {
				if x := ch.Get("delta.content"); x.Type == gjson.String {
					r.counted += int64(c.Count(x.Str, nil))
				} else if x := ch.Get("text"); x.Type == gjson.String {
					r.counted += int64(c.Count(x.Str, nil))
				}
				return true
			})
		}
		if !usageOnly {
			r.kept = append(r.kept, normalize(ev.Data))
		}
	}
}

// checkAgainstDecoder feeds s to an observing and a stripping meter, cut
// at the given points, and checks both against sse.Decoder's reading.
func checkAgainstDecoder(t *testing.T, s string, cuts []int) {
	c := &Counter{charsPerToken: 4}
	want := referenceRead(t, s, c)
	for _, strip := range []bool{false, true} {
		m := &StreamMeter{Strip: strip, Counter: c}
		got := feedSplit(m, s, cuts)
		u, ok := m.Usage()
		require.Equal(t, want.found, ok, "usage found (strip %v)", strip)
		require.Equal(t, want.usage, u, "usage (strip %v)", strip)
		require.Equal(t, want.model, m.Model(), "model (strip %v)", strip)
		require.Equal(t, want.counted, m.Counted(), "counted (strip %v)", strip)
		if !strip {
			require.Equal(t, s, got, "an observing meter changed the stream")
			continue
		}
		require.Equal(t, want.kept, decodeAll(t, got), "events forwarded")
	}
}

// framingPieces are the parts FuzzStreamMeterAgreesWithDecoder builds
// streams from: events, comments, stray fields, and every line end.
var framingPieces = []string{
	"data: {\"model\":\"m1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"abcd\"}}]}",
	"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7}}",
	"data: {\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}",
	"data: {\"choices\":[{\"text\":\"efgh\"}],\"usage\":null}",
	"data: {\"choices\":[{\"delta\":{}}],",
	"data: \"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}",
	"data: [DONE]",
	": keep-alive",
	"event: message",
	"id: 1",
	"data",
	"\n", "\r", "\r\n", "\n", "\r", "\r\n",
}

// FuzzStreamMeterAgreesWithDecoder is differential: a stream assembled
// from SSE pieces with arbitrary line ends, cut at arbitrary points, must
// be read by the meter exactly as sse.Decoder frames it (usage, model,
// deltas, and the events a stripping meter forwards).
func FuzzStreamMeterAgreesWithDecoder(f *testing.F) {
	f.Add([]byte{0, 11, 11, 1, 12, 12, 6, 13, 13}, uint16(5), uint16(40))
	f.Add([]byte{0, 11, 13, 1, 12, 11, 4, 11, 5, 11, 11}, uint16(0), uint16(3))
	f.Add([]byte{7, 12, 3, 15, 15, 2, 12}, uint16(1), uint16(90))
	f.Fuzz(func(t *testing.T, program []byte, cut1, cut2 uint16) {
		if len(program) > 512 {
			return
		}
		var b strings.Builder
		for _, p := range program {
			b.WriteString(framingPieces[int(p)%len(framingPieces)])
		}
		s := b.String()
		a, c := min(int(cut1), len(s)), min(int(cut2), len(s))
		checkAgainstDecoder(t, s, []int{min(a, c), max(a, c)})
	})
}

// FuzzStreamMeterAgreesWithDecoderRaw is the same check on arbitrary bytes.
func FuzzStreamMeterAgreesWithDecoderRaw(f *testing.F) {
	f.Add([]byte(evA+evUsage+evDone), uint16(3))
	f.Add([]byte("data: {\"usage\":{\"prompt_tokens\":1}}\r\r"), uint16(0))
	f.Add([]byte("data: {\"usage\":{\"prompt_tokens\":1}}\n\r\n"), uint16(35))
	f.Fuzz(func(t *testing.T, s []byte, cut uint16) {
		if len(s) > 64<<10 {
			return
		}
		checkAgainstDecoder(t, string(s), []int{min(int(cut), len(s))})
	})
}

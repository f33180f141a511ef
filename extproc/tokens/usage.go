package tokens

import (
	"github.com/streamgate/streamgate/extproc/sse"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// maxPending bounds the bytes a meter keeps of an SSE event that has not
// ended yet; past it the meter stops reading (usage then falls back to the
// deltas counted) and passes bytes on. Non-streamed bodies are scanned
// without being kept (BodyMeter).
const maxPending = sse.DefaultMaxEventSize

// Usage is what a backend reports a request consumed.
type Usage struct {
	Input, Output int64
}

// ParseUsage reads an OpenAI usage object (prompt_tokens,
// completion_tokens). ok is false when v is not such an object.
func ParseUsage(v gjson.Result) (Usage, bool) {
	if !v.IsObject() {
		return Usage{}, false
	}
	p, c := v.Get("prompt_tokens"), v.Get("completion_tokens")
	if v.Get("type").Str == "tokens" {
		// The OpenAI Audio API (gpt-4o-transcribe and later): {"type":
		// "tokens", input_tokens, output_tokens, total_tokens}. Its other
		// kind, {"type": "duration", "seconds"} (whisper-1), has no tokens.
		return ParseResponsesUsage(v)
	}
	if p.Type != gjson.Number {
		// Rerank (vLLM, Jina) reports only total_tokens, all input; a
		// Responses API usage (input_tokens too) is ParseResponsesUsage's.
		if t := v.Get("total_tokens"); t.Type == gjson.Number && !v.Get("input_tokens").Exists() {
			return Usage{Input: t.Int()}, true
		}
		return Usage{}, false
	}
	return Usage{Input: p.Int(), Output: c.Int()}, true
}

// AudioSeconds reads the OpenAI Audio API's duration usage, {"type":
// "duration", "seconds": N} (whisper-1): the input audio's length, which
// counts no tokens. ok is false for any other value.
func AudioSeconds(v gjson.Result) (float64, bool) {
	if !v.IsObject() || v.Get("type").Str != "duration" {
		return 0, false
	}
	s := v.Get("seconds")
	if s.Type != gjson.Number || s.Float() < 0 {
		return 0, false
	}
	return s.Float(), true
}

// ParseResponsesUsage reads an OpenAI Responses API usage object
// (input_tokens, output_tokens), or an Anthropic one, whose input_tokens
// leave out the tokens read from or written to the cache
// (cache_read_input_tokens, cache_creation_input_tokens): they are input
// too, as the stream meter counts them. ok is false when v is not such an
// object.
func ParseResponsesUsage(v gjson.Result) (Usage, bool) {
	if !v.IsObject() {
		return Usage{}, false
	}
	in, out := v.Get("input_tokens"), v.Get("output_tokens")
	if in.Type != gjson.Number || out.Type != gjson.Number {
		return Usage{}, false
	}
	return Usage{Input: in.Int() + v.Get("cache_read_input_tokens").Int() + v.Get("cache_creation_input_tokens").Int(), Output: out.Int()}, true
}

// StreamMeter reads an OpenAI SSE response as it passes: the usage chunk
// (if any) and, as a fallback, the output tokens of the content deltas.
// With Strip it also removes the usage-only chunk from what is forwarded
// (the gateway asked for it, the client did not). Events may be split
// across chunks and chunks may hold many events. One meter serves one
// response from one goroutine.
type StreamMeter struct {
	// Strip removes events that carry usage and no choices.
	Strip bool
	// Counter counts delta text for the fallback (heuristic: nil budget).
	Counter *Counter
	// Responses reads an OpenAI Responses API event stream instead: usage
	// under response.usage (ParseResponsesUsage) of the response's last
	// event, deltas of response.output_text.delta events. Nothing is
	// stripped: the gateway never asks a Responses stream for usage.
	Responses bool
	// Images reads an OpenAI Images API event stream instead: each
	// image_generation.completed (or image_edit.completed) event is one
	// image whose usage (input_tokens, output_tokens) adds up. Its events
	// are scanned as they pass, never held, whatever their size (an image
	// in base64): nothing is stripped and the meter is never Truncated.
	Images bool
	// Anthropic reads an Anthropic Messages event stream instead: the
	// model and usage of message_start, the usage of message_delta (each
	// field present replaces the last), text deltas. Input counts the
	// cached tokens too. Nothing is stripped.
	Anthropic bool

	img     imageStream
	pending []byte // start of an event not yet ended
	cached  Usage  // Anthropic: cache_read + cache_creation input tokens
	lines   sse.LineScanner
	join    []byte // the data of an event with several data lines
	usage   Usage
	found   bool
	counted int64
	broken  bool
	model   string
}

// Model returns the model the first event that named one reported, or "".
func (m *StreamMeter) Model() string { return m.model }

// Usage returns the usage the stream reported, or ok false.
func (m *StreamMeter) Usage() (Usage, bool) { return m.usage, m.found }

// Counted returns the output tokens counted from content deltas so far.
func (m *StreamMeter) Counted() int64 { return m.counted }

// Truncated reports whether the meter stopped reading because one event
// grew past its bound (1 MiB): Usage and Counted then cover only the events
// before it, and the caller must not take them for the response's whole.
func (m *StreamMeter) Truncated() bool { return m.broken }

// Feed reads one body chunk and returns what to forward and whether that
// differs from chunk. Without Strip it is always chunk itself. With Strip
// an unfinished trailing event is held back until it ends (end flushes
// it) and usage-only events are dropped. Events are framed by
// sse.LineScanner, the rule sse.Decoder follows: lines end in CRLF, LF or
// CR, a blank line ends an event, and at end a last event without its
// blank line still counts. Cost per chunk is one scan of its lines plus
// one small JSON lookup per event; it allocates only when an event is
// split across chunks, has several data lines, or is dropped.
func (m *StreamMeter) Feed(chunk []byte, end bool) ([]byte, bool) {
	if m.Images {
		m.img.feed(chunk, end)
		m.usage, m.found = m.img.usage, m.img.foundUsage
		return chunk, false
	}
	if m.broken {
		return m.flush(chunk)
	}
	data := chunk
	held := len(m.pending) > 0
	if held {
		data = append(m.pending, chunk...)
		m.pending = nil
	}
	var out []byte
	dropped := false // out is a rewritten copy rather than a slice of data
	start := 0
	for {
		ev, ok := m.nextEvent(data[start:], end)
		if !ok {
			break
		}
		usageOnly, repl := m.event(data[start:start+ev.n], ev)
		switch {
		case m.Strip && (usageOnly || repl != nil):
			if !dropped {
				out = append([]byte(nil), data[:start]...)
				dropped = true
			}
			if !usageOnly {
				out = append(out, repl...)
			}
		case dropped:
			out = append(out, data[start:start+ev.n]...)
		}
		start += ev.n
	}
	if !dropped {
		out = data[:start]
	}
	rest := data[start:]
	kept := false
	switch {
	case len(rest) == 0:
	case end:
		out = append(out, rest...)
	case len(rest) > maxPending:
		m.broken = true
		out = append(out, rest...)
	default:
		m.pending = append([]byte(nil), rest...)
		kept = true
	}
	if !m.Strip {
		return chunk, false
	}
	return out, held || dropped || kept
}

func (m *StreamMeter) flush(chunk []byte) ([]byte, bool) {
	if len(m.pending) == 0 || !m.Strip {
		m.pending = nil
		return chunk, false
	}
	out := append(m.pending, chunk...)
	m.pending = nil
	return out, true
}

// rawEvent is one event as nextEvent framed it.
type rawEvent struct {
	n         int    // bytes of the event, its lines and blank line included
	data      []byte // its data lines joined with "\n" (sse.Decoder's Data)
	dataLines int
	dataAt    int // offset of data in the event when dataLines is 1
}

// nextEvent frames the first event of b with sse.LineScanner, committing
// the scanner's state only when the event is complete. At end the rest of
// b is the last event even without a blank line (sse.Decoder.Close does
// the same).
func (m *StreamMeter) nextEvent(b []byte, end bool) (rawEvent, bool) {
	sc := m.lines
	var ev rawEvent
	for {
		line, n, ok := sc.Next(b[ev.n:], end)
		if !ok {
			if end && ev.n > 0 {
				m.lines = sc
				return ev, true
			}
			return rawEvent{}, false
		}
		at := ev.n
		ev.n += n
		if len(line) == 0 {
			m.lines = sc
			return ev, true
		}
		name, value := sse.Field(line)
		if string(name) != "data" {
			continue
		}
		switch ev.dataLines {
		case 0:
			ev.data = value
			lineStart := at
			if b[at] == '\n' { // the LF of the previous line's CR
				lineStart++
			}
			ev.dataAt = lineStart + len(line) - len(value)
		case 1:
			m.join = append(append(append(m.join[:0], ev.data...), '\n'), value...)
			ev.data = m.join
		default:
			m.join = append(append(m.join, '\n'), value...)
			ev.data = m.join
		}
		ev.dataLines++
	}
}

// event reads one framed event (whole, its bytes) and reports whether it
// is a usage-only chunk. With Strip, an event whose single data line
// carries "usage": null (the backend marks every chunk so once
// include_usage is on) comes back rewritten without that field, so the
// client sees the chunks it would have had without the gateway's request;
// otherwise repl is nil.
func (m *StreamMeter) event(whole []byte, ev rawEvent) (usageOnly bool, repl []byte) {
	payload := trimJSONSpace(ev.data)
	if len(payload) == 0 || payload[0] != '{' {
		return false, nil
	}
	if m.Responses {
		m.responsesEvent(payload)
		return false, nil
	}
	if m.Anthropic {
		m.anthropicEvent(payload)
		return false, nil
	}
	if m.model == "" {
		m.model = gjson.GetBytes(payload, "model").Str
	}
	uv := gjson.GetBytes(payload, "usage")
	if u, ok := ParseUsage(uv); ok {
		m.usage, m.found = u, true
		if ch := gjson.GetBytes(payload, "choices"); !ch.Exists() || (ch.IsArray() && len(ch.Array()) == 0) {
			usageOnly = true
		}
	}
	if m.Counter != nil {
		gjson.GetBytes(payload, "choices").ForEach(func(_, c gjson.Result) bool {
			if t := c.Get("delta.content"); t.Type == gjson.String {
				m.counted += int64(m.Counter.Count(t.Str, nil))
			} else if t := c.Get("text"); t.Type == gjson.String {
				m.counted += int64(m.Counter.Count(t.Str, nil))
			}
			return true
		})
	}
	if !m.Strip || usageOnly || ev.dataLines != 1 || uv.Type != gjson.Null || !uv.Exists() {
		return usageOnly, nil
	}
	trimmed, err := sjson.DeleteBytes(payload, "usage")
	if err != nil {
		return false, nil
	}
	// Keep everything around the payload (field name, other lines).
	at := ev.dataAt + len(ev.data) - len(payload)
	repl = make([]byte, 0, len(whole))
	repl = append(append(append(repl, whole[:at]...), trimmed...), whole[at+len(payload):]...)
	return false, repl
}

// responsesEvent reads one Responses API event: the usage and model of
// the response object the final events carry, the text of output deltas.
func (m *StreamMeter) responsesEvent(payload []byte) {
	r := gjson.GetBytes(payload, "response")
	if r.IsObject() {
		if u, ok := ParseResponsesUsage(r.Get("usage")); ok {
			m.usage, m.found = u, true
		}
		if m.model == "" {
			m.model = r.Get("model").Str
		}
		return
	}
	if m.Counter != nil {
		if d := gjson.GetBytes(payload, "delta"); d.Type == gjson.String {
			m.counted += int64(m.Counter.Count(d.Str, nil))
		}
	}
}

// anthropicEvent reads one Anthropic Messages event.
func (m *StreamMeter) anthropicEvent(payload []byte) {
	switch gjson.GetBytes(payload, "type").Str {
	case "message_start":
		msg := gjson.GetBytes(payload, "message")
		if m.model == "" {
			m.model = msg.Get("model").Str
		}
		m.anthropicUsage(msg.Get("usage"))
	case "message_delta":
		m.anthropicUsage(gjson.GetBytes(payload, "usage"))
	case "content_block_delta":
		if m.Counter != nil {
			if t := gjson.GetBytes(payload, "delta.text"); t.Type == gjson.String {
				m.counted += int64(m.Counter.Count(t.Str, nil))
			}
		}
	}
}

// anthropicUsage takes the fields present in an Anthropic usage object:
// counts are cumulative, so each replaces the last.
func (m *StreamMeter) anthropicUsage(u gjson.Result) {
	if !u.IsObject() {
		return
	}
	in := m.usage.Input - m.cached.Input
	if v := u.Get("input_tokens"); v.Type == gjson.Number {
		in = v.Int()
	}
	if v := u.Get("output_tokens"); v.Type == gjson.Number {
		m.usage.Output = v.Int()
		m.found = true
	}
	cr, cw := u.Get("cache_read_input_tokens"), u.Get("cache_creation_input_tokens")
	if cr.Type == gjson.Number || cw.Type == gjson.Number {
		m.cached.Input = cr.Int() + cw.Int()
	}
	m.usage.Input = in + m.cached.Input
}

// trimJSONSpace drops the JSON whitespace that may precede a payload.
func trimJSONSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	return b
}

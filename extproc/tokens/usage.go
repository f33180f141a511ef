package tokens

import (
	"bytes"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// maxPending bounds the bytes a meter keeps of an SSE event that has not
// ended yet; past it the meter stops reading (usage then falls back to the
// deltas counted) and passes bytes on. Non-streamed bodies are scanned
// without being kept (BodyMeter).
const maxPending = 1 << 20

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
	if p.Type != gjson.Number {
		return Usage{}, false
	}
	return Usage{Input: p.Int(), Output: c.Int()}, true
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

	pending []byte // start of an event not yet ended
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

// Feed reads one body chunk and returns what to forward and whether that
// differs from chunk. Without Strip it is always chunk itself. With Strip
// an unfinished trailing event is held back until it ends (end flushes
// it) and usage-only events are dropped. Cost per chunk is one scan plus
// one small JSON lookup per event; it allocates only when an event is
// split across chunks or dropped.
func (m *StreamMeter) Feed(chunk []byte, end bool) ([]byte, bool) {
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
		n, sep := eventEnd(data[start:])
		if n < 0 {
			break
		}
		ev := data[start : start+n+sep]
		usageOnly, repl := m.event(data[start : start+n])
		switch {
		case m.Strip && (usageOnly || repl != nil):
			if !dropped {
				out = append([]byte(nil), data[:start]...)
				dropped = true
			}
			if !usageOnly {
				out = append(append(out, repl...), ev[n:]...)
			}
		case dropped:
			out = append(out, ev...)
		}
		start += n + sep
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

// eventEnd finds the blank line ending the first event of b: the event's
// length and the separator's, or -1.
func eventEnd(b []byte) (int, int) {
	i := bytes.Index(b, []byte("\n\n"))
	j := bytes.Index(b, []byte("\r\n\r\n"))
	switch {
	case i < 0 && j < 0:
		return -1, 0
	case j >= 0 && (i < 0 || j < i):
		return j, 4
	default:
		return i, 2
	}
}

// event reads one SSE event and reports whether it is a usage-only chunk.
// With Strip, an event whose single data line carries "usage": null (the
// backend marks every chunk so once include_usage is on) comes back
// rewritten without that field, so the client sees the chunks it would
// have had without the gateway's request; otherwise repl is nil.
func (m *StreamMeter) event(ev []byte) (usageOnly bool, repl []byte) {
	whole := ev
	dataLines := 0
	var nullUsage []byte // the payload of a data line with "usage": null
	for len(ev) > 0 {
		line := ev
		if k := bytes.IndexByte(ev, '\n'); k >= 0 {
			line, ev = ev[:k], ev[k+1:]
		} else {
			ev = nil
		}
		line = bytes.TrimRight(line, "\r")
		payload, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue
		}
		payload = bytes.TrimLeft(payload, " ")
		dataLines++
		if len(payload) == 0 || payload[0] != '{' {
			continue
		}
		if m.model == "" {
			m.model = gjson.GetBytes(payload, "model").Str
		}
		uv := gjson.GetBytes(payload, "usage")
		if m.Strip && uv.Type == gjson.Null && uv.Exists() {
			nullUsage = payload
		}
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
	}
	if nullUsage == nil || usageOnly || dataLines != 1 {
		return usageOnly, nil
	}
	trimmed, err := sjson.DeleteBytes(nullUsage, "usage")
	if err != nil {
		return false, nil
	}
	// Keep everything around the payload (field name, other lines).
	at := bytes.Index(whole, nullUsage)
	repl = make([]byte, 0, len(whole))
	repl = append(append(append(repl, whole[:at]...), trimmed...), whole[at+len(nullUsage):]...)
	return false, repl
}

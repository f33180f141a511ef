// Package sse frames the byte streams model servers answer with: server-sent
// events (text/event-stream) and newline-delimited JSON. Both framers are
// incremental: bytes arrive in chunks cut anywhere (inside a line, between a
// CR and its LF), and a framer holds only the unfinished event, so its memory
// is bounded by the largest event, never by the length of the stream.
package sse

import (
	"errors"
	"fmt"
)

// DefaultMaxEventSize is the event size limit of a Decoder whose
// MaxEventSize is zero.
const DefaultMaxEventSize = 1 << 20

// ErrEventTooLarge is returned when one event (or NDJSON line) grows past the
// framer's size limit. The framer is unusable afterwards.
var ErrEventTooLarge = errors.New("event too large")

// Event is one dispatched server-sent event. Its slices alias the Decoder's
// buffers and stay valid only until the next call to Feed, Next or Close.
type Event struct {
	// Type is the value of the last "event:" field, empty when none was sent.
	Type []byte
	// ID is the last "id:" value seen on the stream (it persists across
	// events, as the SSE specification says), empty when none.
	ID []byte
	// Data is the event's "data:" lines joined with "\n".
	Data []byte
}

// Decoder splits a text/event-stream into events following the WHATWG
// parsing rules: lines end in CRLF, LF or CR; lines starting with ':' are
// comments (keep-alives); a field's value loses one leading space; several
// "data:" lines join with "\n"; a blank line dispatches the event when it
// has data. Unlike a browser, Close also dispatches a last event that was
// not followed by a blank line.
//
// The zero value is ready to use. A Decoder belongs to one stream and one
// goroutine. Steady-state cost per chunk is one copy of the chunk into the
// pending buffer and no allocation once the buffers have grown to the size
// of the largest event.
type Decoder struct {
	// MaxEventSize bounds the bytes of one event, its lines, comments and
	// line ends included (DefaultMaxEventSize when zero).
	MaxEventSize int

	buf     []byte // pending input; buf[r:] is not yet split into lines
	r       int
	data    []byte
	typ     []byte
	id      []byte
	size    int  // bytes of the current event's lines so far
	hasData bool // a data field was seen for the current event
	lines   LineScanner
	eof     bool
	clear   bool // the previous Next dispatched; reset event state first
	err     error
}

// Feed appends the next chunk of the stream. p is copied; the caller may
// reuse it.
func (d *Decoder) Feed(p []byte) {
	if d.r > 0 {
		n := copy(d.buf, d.buf[d.r:])
		d.buf = d.buf[:n]
		d.r = 0
	}
	d.buf = append(d.buf, p...)
}

// Close marks the end of the stream: the remaining bytes form a last line
// and a pending event is dispatched by the following calls to Next.
func (d *Decoder) Close() { d.eof = true }

// Next returns the next complete event. ok is false when more input is
// needed (or, after Close, when the stream is exhausted). After an error
// every call returns the same error.
func (d *Decoder) Next() (ev Event, ok bool, err error) {
	if d.err != nil {
		return Event{}, false, d.err
	}
	if d.clear {
		d.data, d.typ, d.size, d.hasData, d.clear = d.data[:0], d.typ[:0], 0, false, false
	}
	for {
		line, found := d.line()
		if !found {
			// The partial line's bytes, less an LF the scanner will skip
			// as the end of the previous line's CR: counting it refused
			// an event of exactly the limit when a chunk ended between
			// that CR and LF (found by make fuzz-campaign).
			pending := len(d.buf) - d.r
			if d.lines.skipLF && pending > 0 && d.buf[d.r] == '\n' {
				pending--
			}
			if d.size+pending > d.max() {
				return Event{}, false, d.fail()
			}
			if d.eof && d.hasData {
				return d.dispatch(), true, nil
			}
			return Event{}, false, nil
		}
		if len(line) == 0 {
			if d.hasData {
				return d.dispatch(), true, nil
			}
			d.typ, d.size = d.typ[:0], 0
			continue
		}
		d.size += len(line) + 1
		if d.size > d.max() {
			return Event{}, false, d.fail()
		}
		d.field(line)
	}
}

func (d *Decoder) max() int {
	if d.MaxEventSize > 0 {
		return d.MaxEventSize
	}
	return DefaultMaxEventSize
}

func (d *Decoder) fail() error {
	d.err = fmt.Errorf("cannot frame server-sent event: %w (limit %d bytes)", ErrEventTooLarge, d.max())
	d.buf, d.data = nil, nil
	return d.err
}

func (d *Decoder) dispatch() Event {
	d.clear = true
	data := d.data
	if len(data) > 0 {
		data = data[:len(data)-1] // the LF after the last data line
	}
	return Event{Type: d.typ, ID: d.id, Data: data}
}

// line returns the next complete line without its terminator.
func (d *Decoder) line() ([]byte, bool) {
	line, n, ok := d.lines.Next(d.buf[d.r:], d.eof)
	d.r += n
	return line, ok
}

// field applies one non-blank line to the current event.
func (d *Decoder) field(line []byte) {
	if line[0] == ':' {
		return // comment, e.g. a keep-alive
	}
	name, value := Field(line)
	switch string(name) {
	case "data":
		d.data = append(append(d.data, value...), '\n')
		d.hasData = true
	case "event":
		d.typ = append(d.typ[:0], value...)
	case "id":
		for _, c := range value {
			if c == 0 {
				return // the specification ignores ids holding NUL
			}
		}
		d.id = append(d.id[:0], value...)
	}
}

// AppendEvent appends one event to dst in text/event-stream form: an
// "event:" line when typ is not empty, one "data:" line per line of data,
// and the blank line that ends the event.
func AppendEvent(dst []byte, typ string, data []byte) []byte {
	if typ != "" {
		dst = append(append(append(dst, "event: "...), typ...), '\n')
	}
	for {
		i := indexNewline(data)
		if i < 0 {
			dst = append(append(append(dst, "data: "...), data...), '\n')
			break
		}
		dst = append(append(append(dst, "data: "...), data[:i]...), '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	return append(dst, '\n')
}

func indexNewline(b []byte) int {
	for i, c := range b {
		if c == '\n' || c == '\r' {
			return i
		}
	}
	return -1
}

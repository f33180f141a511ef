package sse

import (
	"bytes"
	"fmt"
)

// LineDecoder splits newline-delimited JSON (as Ollama streams it) into
// lines. Lines end in LF or CRLF; blank lines are skipped; Close makes a last
// unterminated line available. It does not validate JSON.
//
// The zero value is ready to use. A LineDecoder belongs to one stream and
// one goroutine; it holds only the unfinished line, never the stream.
type LineDecoder struct {
	// MaxLineSize bounds one line (DefaultMaxEventSize when zero).
	MaxLineSize int

	buf []byte
	r   int
	eof bool
	err error
}

// Feed appends the next chunk. p is copied; the caller may reuse it.
func (d *LineDecoder) Feed(p []byte) {
	if d.r > 0 {
		n := copy(d.buf, d.buf[d.r:])
		d.buf = d.buf[:n]
		d.r = 0
	}
	d.buf = append(d.buf, p...)
}

// Close marks the end of the stream.
func (d *LineDecoder) Close() { d.eof = true }

// Next returns the next non-blank line without its terminator. The slice
// aliases the decoder's buffer and is valid until the next Feed, Next or
// Close. ok is false when more input is needed or the stream is exhausted.
func (d *LineDecoder) Next() (line []byte, ok bool, err error) {
	if d.err != nil {
		return nil, false, d.err
	}
	for {
		rest := d.buf[d.r:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			if len(trimCR(rest)) > d.max() {
				d.err = fmt.Errorf("cannot frame NDJSON line: %w (limit %d bytes)", ErrEventTooLarge, d.max())
				d.buf = nil
				return nil, false, d.err
			}
			if !d.eof || len(trimSpace(rest)) == 0 {
				return nil, false, nil
			}
			d.r = len(d.buf)
			return trimCR(rest), true, nil
		}
		d.r += i + 1
		line := trimCR(rest[:i])
		if len(line) > d.max() {
			d.err = fmt.Errorf("cannot frame NDJSON line: %w (limit %d bytes)", ErrEventTooLarge, d.max())
			d.buf = nil
			return nil, false, d.err
		}
		if len(trimSpace(line)) > 0 {
			return line, true, nil
		}
	}
}

func (d *LineDecoder) max() int {
	if d.MaxLineSize > 0 {
		return d.MaxLineSize
	}
	return DefaultMaxEventSize
}

func trimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

package sse

import "bytes"

// LineScanner finds the lines of a text/event-stream: the one framing rule
// every reader of a stream shares (Decoder, the token meters, telemetry).
// A line ends in CRLF, LF or CR. A CR that is the last byte seen ends its
// line at once (readers dispatch without waiting for the next chunk); an
// LF starting the following input then belongs to that line end and is no
// line of its own, which the scanner remembers.
//
// The zero value is ready to use. Its state is one flag, so a reader that
// rescans bytes it has not committed to (an event not yet ended) copies the
// scanner and keeps the copy only once it commits. Cost: two IndexByte scans
// of the line's bytes, no allocation.
type LineScanner struct {
	skipLF bool // the last line ended in a CR that was the last byte seen
}

// Next returns the first line of b without its terminator and n, the bytes
// it takes (terminator and a leading LF left from the previous line's CR
// included). ok is false when b holds no complete line; the scanner is then
// unchanged unless b showed that no LF follows that CR. With atEOF the
// unterminated rest of b, when not empty, is the last line.
func (s *LineScanner) Next(b []byte, atEOF bool) (line []byte, n int, ok bool) {
	skip := 0
	if s.skipLF && len(b) > 0 {
		if b[0] == '\n' {
			skip = 1
		} else {
			s.skipLF = false
		}
	}
	rest := b[skip:]
	i, t := lineEnd(rest)
	if i < 0 {
		if atEOF && len(rest) > 0 {
			s.skipLF = false
			return rest, len(b), true
		}
		return nil, 0, false
	}
	s.skipLF = t == 1 && rest[i] == '\r' && i+1 == len(rest)
	return rest[:i], skip + i + t, true
}

// lineEnd returns the index of the first line end in b and the length of
// its terminator (1, or 2 for CRLF), or -1.
func lineEnd(b []byte) (int, int) {
	i := bytes.IndexByte(b, '\n')
	head := b
	if i >= 0 {
		head = b[:i]
	}
	if j := bytes.IndexByte(head, '\r'); j >= 0 {
		if j+1 == i {
			return j, 2
		}
		return j, 1
	}
	return i, 1
}

// Field splits a non-blank line into its field name and value, as the
// specification says: the name is everything before the first ':', the
// value everything after it less one leading space; a line without ':' is
// a name with an empty value. A comment (a line starting with ':') has an
// empty name.
func Field(line []byte) (name, value []byte) {
	i := bytes.IndexByte(line, ':')
	if i < 0 {
		return line, nil
	}
	value = line[i+1:]
	if len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	return line[:i], value
}

// Part is Next for a reader that cannot hold a line until it ends (a
// line may be megabytes of base64): it returns the bytes of the current
// line that b holds, up to its terminator or b's end, n the bytes it took
// (the terminator, and an LF left from the previous line's CR, included),
// and whether the line ended in b. The rule of line ends is Next's; a
// reader calling Part on every chunk sees each line's bytes once, in
// order, split where the chunks split it. n is 0 only when b is empty.
func (s *LineScanner) Part(b []byte) (part []byte, n int, ended bool) {
	skip := 0
	if s.skipLF && len(b) > 0 {
		if b[0] == '\n' {
			skip = 1
		}
		s.skipLF = false
	}
	rest := b[skip:]
	i, t := lineEnd(rest)
	if i < 0 {
		return rest, len(b), false
	}
	s.skipLF = t == 1 && rest[i] == '\r' && i+1 == len(rest)
	return rest[:i], skip + i + t, true
}

package tokens

import (
	"bytes"

	"github.com/tidwall/gjson"
)

// maxMember bounds the bytes BodyMeter keeps of one top-level member it
// reads ("usage", "model"); a longer value is not read. OpenAI's usage
// object, details included, is a few hundred bytes.
const maxMember = 64 << 10

// maxKey bounds the bytes of a top-level key BodyMeter compares; longer
// keys are neither "usage" nor "model", even escaped.
const maxKey = 64

// Top-level members BodyMeter reads.
const (
	memberNone = iota
	memberUsage
	memberModel
	memberSize    // Images: the size of the images
	memberQuality // Images: their quality
	memberType    // Images: an event's type (imageStream)
	memberCount
)

// Where the scanner is inside the top-level object (depth 1).
const (
	phaseKey   = iota // before a key: whitespace, ',' or '"'
	phaseColon        // after a key, before its ':'
	phaseValue        // in a member's value, until ',' or '}' at depth 1
)

// BodyMeter reads the top-level "usage" and "model" members of a
// non-streamed JSON response delivered in chunks, whatever the body's
// size: it scans each chunk once as it passes, tracking only string and
// nesting state, and keeps the bytes of those two members alone (each up
// to 64 KiB), never the body. The first occurrence of a member counts, as
// for gjson. One meter serves one response from one goroutine; the zero
// value is ready. Cost per chunk: one pass, with strings skipped by
// IndexByte; it allocates only the two members' bytes.
type BodyMeter struct {
	// Responses reads an OpenAI Responses API object: its usage is
	// input_tokens and output_tokens (ParseResponsesUsage).
	Responses bool
	// Images reads an OpenAI Images API response: its usage as Responses
	// does, the objects of its top-level data array counted as images, its
	// size and quality (Images).
	Images bool

	depth   int  // nesting depth: 0 outside the top-level object
	inStr   bool // inside a string
	esc     bool // inside a string, after an unescaped backslash
	stopped bool // the top-level value ended, or is not an object
	ended   bool // Feed saw the end of the body
	phase   int
	// key holds the current top-level key (up to maxKey bytes); keyLong
	// marks one that was longer.
	key     []byte
	keyLong bool
	// capturing is the member whose value is being read, or memberNone.
	capturing int
	values    [memberCount][]byte
	met       [memberCount]bool // the member's key was seen
	complete  [memberCount]bool // values holds the member's whole value
	// inData: the scanner is in the value of the top-level data member
	// (Images), whose objects at depth 3 are counted in images.
	inData, dataMet bool
	images          Images
	typ             string // the type member (Images mode)

	usage   Usage
	found   bool
	seconds float64
	model   string
}

// Model returns the body's top-level model string, or "".
func (m *BodyMeter) Model() string { return m.model }

// Usage returns the usage the body reported, or ok false.
func (m *BodyMeter) Usage() (Usage, bool) { return m.usage, m.found }

// Seconds returns the input audio's length an Audio API answer reported
// instead of tokens (AudioSeconds), or 0.
func (m *BodyMeter) Seconds() float64 { return m.seconds }

// Ended reports whether Feed has seen the end of the body.
func (m *BodyMeter) Ended() bool { return m.ended }

// Feed scans one chunk; at end it parses the members it kept.
func (m *BodyMeter) Feed(chunk []byte, end bool) {
	m.scan(chunk)
	if !end || m.ended {
		return
	}
	m.ended = true
	m.capturing = memberNone
	if m.complete[memberUsage] {
		parse := ParseUsage
		if m.Responses || m.Images {
			parse = ParseResponsesUsage
		}
		u := gjson.ParseBytes(m.values[memberUsage])
		if m.usage, m.found = parse(u); !m.found {
			m.seconds, _ = AudioSeconds(u)
		}
	}
	if v := m.values[memberModel]; m.complete[memberModel] {
		if r := gjson.ParseBytes(v); r.Type == gjson.String {
			m.model = r.Str
		}
	}
	m.images.Size, m.images.Quality, m.typ = m.str(memberSize), m.str(memberQuality), m.str(memberType)
	m.values = [memberCount][]byte{}
}

// str is the string value of member w, or "".
func (m *BodyMeter) str(w int) string {
	if !m.complete[w] {
		return ""
	}
	return gjson.ParseBytes(m.values[w]).Str
}

// ImagesSeen returns what an Images API response reported (Images mode): the
// objects of its data array, its size and quality, once Feed saw the end.
func (m *BodyMeter) ImagesSeen() Images { return m.images }

// scan advances the scanner over b, keeping the bytes of a member's value
// that lie in b.
func (m *BodyMeter) scan(b []byte) {
	from := 0 // start of the kept bytes in b while capturing
	i := 0
	for i < len(b) && !m.stopped {
		if m.inStr {
			j := m.stringEnd(b[i:])
			if m.depth == 1 && m.phase == phaseKey {
				k := len(b)
				if j >= 0 {
					k = i + j - 1 // the closing quote is not part of the key
				}
				m.addKey(b[i:k])
			}
			if j < 0 {
				break
			}
			i += j
			m.inStr = false
			if m.depth == 1 && m.phase == phaseKey {
				m.phase = phaseColon
			}
			continue
		}
		c := b[i]
		i++
		if m.depth == 0 {
			m.scanTop(c)
			continue
		}
		switch c {
		case '"':
			m.inStr, m.esc = true, false
			if m.depth == 1 && m.phase == phaseKey {
				m.key, m.keyLong = m.key[:0], false
			}
		case '{', '[':
			m.depth++
			if m.inData && c == '{' && m.depth == 3 {
				m.images.Count++
			}
		case '}', ']':
			m.depth--
			if m.depth == 0 {
				from = m.endValue(b, from, i-1)
				m.stopped = true
			}
		case ',':
			if m.depth == 1 {
				from = m.endValue(b, from, i-1)
				m.phase = phaseKey
			}
		case ':':
			if m.depth == 1 && m.phase == phaseColon {
				m.phase = phaseValue
				m.capturing = m.wanted()
				from = i
			}
		}
	}
	if m.capturing != memberNone {
		m.keep(b[from:])
	}
}

// scanTop reads a byte before the top-level value: whitespace, then '{'.
func (m *BodyMeter) scanTop(c byte) {
	switch c {
	case ' ', '\t', '\r', '\n':
	case '{':
		m.depth, m.phase, m.capturing = 1, phaseKey, memberNone
	default:
		m.stopped = true // not a JSON object
	}
}

// stringEnd finds the unescaped quote ending the string b is inside and
// returns the index just past it, or -1 when the string goes on past b
// (m.esc then says whether b ended inside an escape).
func (m *BodyMeter) stringEnd(b []byte) int {
	from := 0
	for {
		j := bytes.IndexByte(b[from:], '"')
		if j < 0 {
			n := trailingBackslashes(b[from:])
			if n == len(b)-from {
				m.esc = m.esc != (n%2 == 1)
			} else {
				m.esc = n%2 == 1
			}
			return -1
		}
		q := from + j
		n := trailingBackslashes(b[from:q])
		escaped := n%2 == 1
		if n == q-from && m.esc {
			escaped = !escaped // the run goes on from the previous chunk
		}
		m.esc = false
		if !escaped {
			return q + 1
		}
		from = q + 1
	}
}

// trailingBackslashes counts the backslashes that end b.
func trailingBackslashes(b []byte) int {
	n := 0
	for n < len(b) && b[len(b)-1-n] == '\\' {
		n++
	}
	return n
}

// addKey appends part of the current top-level key.
func (m *BodyMeter) addKey(part []byte) {
	if m.keyLong || len(m.key)+len(part) > maxKey {
		m.keyLong = true
		return
	}
	m.key = append(m.key, part...)
}

// wanted returns the member the key just read names, if its value is
// still to be read.
func (m *BodyMeter) wanted() int {
	if m.keyLong {
		return memberNone
	}
	key := m.key
	if bytes.IndexByte(key, '\\') >= 0 {
		quoted := append(append([]byte{'"'}, key...), '"')
		key = []byte(gjson.ParseBytes(quoted).Str)
	}
	w := memberNone
	switch string(key) {
	case "usage":
		w = memberUsage
	case "model":
		w = memberModel
	case "size":
		w = m.imagesOnly(memberSize)
	case "quality":
		w = m.imagesOnly(memberQuality)
	case "type":
		w = m.imagesOnly(memberType)
	case "data":
		m.inData = m.Images && !m.dataMet
		m.dataMet = m.dataMet || m.Images
	}
	if w == memberNone || m.met[w] {
		return memberNone
	}
	m.met[w] = true
	return w
}

// imagesOnly is w in Images mode, else memberNone.
func (m *BodyMeter) imagesOnly(w int) int {
	if !m.Images {
		return memberNone
	}
	return w
}

// endValue closes the value being kept, whose last byte precedes b[at],
// and returns where kept bytes would start next.
func (m *BodyMeter) endValue(b []byte, from, at int) int {
	m.inData = false
	if w := m.capturing; w != memberNone {
		m.keep(b[from:at])
		m.complete[w] = m.capturing != memberNone
		m.capturing = memberNone
	}
	return at + 1
}

// keep appends bytes of the value being read, dropping a value longer
// than maxMember.
func (m *BodyMeter) keep(part []byte) {
	w := m.capturing
	if len(m.values[w])+len(part) > maxMember {
		m.values[w], m.capturing = nil, memberNone
		return
	}
	if m.values[w] == nil {
		m.values[w] = make([]byte, 0, len(part))
	}
	m.values[w] = append(m.values[w], part...)
}

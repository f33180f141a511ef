package tokens

import (
	"bytes"

	"github.com/streamgate/streamgate/extproc/sse"
)

// Images is what an OpenAI Images API response reported about the images
// it carried: how many (the objects of a body's data array, or a
// stream's completed events), and the size and quality it states ("" when
// it states none). Count 0 means none were seen: the caller falls back to
// the n the request asked for.
type Images struct {
	Count         int64
	Size, Quality string
}

// imageEvents are the event types that carry one finished image (the
// generations and edits streams); partial images are previews of it.
const (
	imageGenerationCompleted = "image_generation.completed"
	imageEditCompleted       = "image_edit.completed"
)

// maxFieldName bounds the bytes of an SSE field name the image scanner
// compares: longer names are not "data".
const maxFieldName = 8

// imageStream reads an Images API event stream without holding its lines:
// an event's data (a partial or final image in base64, often megabytes)
// flows through a BodyMeter in Images mode, which keeps only the members
// it reads (type, usage, size, quality). Lines are framed by
// sse.LineScanner.Part, the rule every stream reader follows; fields as
// sse.Field splits them. The zero value is ready.
type imageStream struct {
	lines sse.LineScanner
	// The current line: its field name so far (up to maxFieldName bytes),
	// whether its ':' was seen, whether it is a data line, whether one
	// leading space of the value may still be dropped, and whether it has
	// any byte at all (a blank line ends the event).
	field      []byte
	fieldLong  bool
	fieldDone  bool
	data       bool
	skipSpace  bool
	lineBytes  bool
	event      BodyMeter // the current event's data
	eventData  bool      // the current event has a data line
	seen       Images
	usage      Usage
	foundUsage bool
}

// feed scans one chunk of the stream; at end an unterminated last line
// and event still count, as sse.Decoder's Close makes them.
func (s *imageStream) feed(b []byte, end bool) {
	for len(b) > 0 {
		part, n, ended := s.lines.Part(b)
		b = b[n:]
		s.linePart(part)
		if ended {
			s.endLine()
		}
	}
	if end {
		if s.lineBytes {
			s.endLine()
		}
		s.dispatch()
	}
}

// linePart reads the next bytes of the current line.
func (s *imageStream) linePart(p []byte) {
	if len(p) == 0 {
		return
	}
	s.lineBytes = true
	if !s.fieldDone {
		i := bytes.IndexByte(p, ':')
		name := p
		if i >= 0 {
			name = p[:i]
		}
		if len(s.field)+len(name) > maxFieldName {
			s.fieldLong = true
		} else {
			s.field = append(s.field, name...)
		}
		if i < 0 {
			return
		}
		s.fieldDone, s.skipSpace = true, true
		if s.isData() {
			s.startData()
		}
		p = p[i+1:]
	}
	if s.skipSpace && len(p) > 0 {
		s.skipSpace = false
		if p[0] == ' ' {
			p = p[1:]
		}
	}
	if s.data {
		s.event.Feed(p, false)
	}
}

// isData reports whether the current line's field is "data".
func (s *imageStream) isData() bool { return !s.fieldLong && string(s.field) == "data" }

// startData begins a data line: the event's first starts its meter, the
// others join with "\n" as sse.Decoder joins them.
func (s *imageStream) startData() {
	s.data = true
	if s.eventData {
		s.event.Feed([]byte{'\n'}, false)
		return
	}
	s.event, s.eventData = BodyMeter{Images: true}, true
}

// endLine ends the current line; a blank one ends the event.
func (s *imageStream) endLine() {
	if !s.lineBytes {
		s.dispatch()
	} else if !s.fieldDone && s.isData() {
		s.startData() // "data" without ':' is a data line with no value
	}
	s.field, s.fieldLong, s.fieldDone, s.data, s.skipSpace, s.lineBytes = s.field[:0], false, false, false, false, false
}

// dispatch reads the ended event: a completed event counts one image,
// adds its usage (each carries its own image's) and states the size and
// quality.
func (s *imageStream) dispatch() {
	if !s.eventData {
		return
	}
	s.eventData = false
	ev := &s.event
	ev.Feed(nil, true)
	if ev.typ != imageGenerationCompleted && ev.typ != imageEditCompleted {
		return
	}
	s.seen.Count++
	if u, ok := ev.Usage(); ok {
		s.usage.Input += u.Input
		s.usage.Output += u.Output
		s.foundUsage = true
	}
	im := ev.ImagesSeen()
	if s.seen.Size == "" {
		s.seen.Size = im.Size
	}
	if s.seen.Quality == "" {
		s.seen.Quality = im.Quality
	}
}

// ImagesSeen returns what an Images API stream reported so far (Images mode).
func (m *StreamMeter) ImagesSeen() Images { return m.img.seen }

package form

import (
	"bytes"
	"fmt"
	"strings"
)

// RewriteModel returns body, which Read parsed into f, with the model
// field's value replaced by model and every other byte as sent: file parts
// are copied once into the new body, not parsed again. The caller sets the
// new content-length (len of the result). model must not contain CR or
// LF, which could forge a boundary line. The model's value is found by a
// scan for the delimiters mime/multipart accepts, checked against what
// Read saw (same number of parts, same value at the model's index); any
// disagreement is ErrMalformed rather than a guess.
func RewriteModel(f *Form, body []byte, model string) ([]byte, error) {
	if model == "" || strings.ContainsAny(model, "\r\n") {
		return nil, fmt.Errorf("cannot write model %q into a multipart body: %w", model, ErrMalformed)
	}
	spans := valueSpans(body, f.boundary)
	if len(spans) != f.parts || f.modelPart < 0 {
		return nil, fmt.Errorf("cannot locate the model field: %w", ErrMalformed)
	}
	s := spans[f.modelPart]
	if string(body[s.start:s.end]) != f.Model {
		return nil, fmt.Errorf("cannot locate the model field: %w", ErrMalformed)
	}
	out := make([]byte, 0, len(body)-(s.end-s.start)+len(model))
	out = append(out, body[:s.start]...)
	out = append(out, model...)
	return append(out, body[s.end:]...), nil
}

// span is a part's value: body[start:end].
type span struct{ start, end int }

// valueSpans finds the value of every part the way mime/multipart frames
// them: a first "--boundary" line (after any preamble), then parts each
// made of headers, a blank line and a value that ends at the next
// newline-dash-boundary followed by optional spaces and a line end or
// "--". Lines end in CRLF, or in LF alone if the first boundary line does.
// On a body it cannot frame it returns what it found so far.
func valueSpans(body []byte, boundary string) []span {
	dash := []byte("--" + boundary)
	pos := 0
	for !bytes.HasPrefix(body[pos:], dash) || !boundaryEnd(body, pos+len(dash)) {
		i := bytes.Index(body[pos:], append([]byte("\n"), dash...))
		if i < 0 {
			return nil
		}
		pos += i + 1
	}
	pos += len(dash)
	nl := []byte("\r\n")
	if line := body[pos:]; !bytes.HasPrefix(bytes.TrimLeft(line, " \t"), nl) {
		nl = []byte("\n")
	}
	delim := append(append([]byte{}, nl...), dash...)
	var spans []span
	for {
		rest := bytes.TrimLeft(body[pos:], " \t")
		if bytes.HasPrefix(rest, []byte("--")) {
			return spans
		}
		i := bytes.Index(body[pos:], nl)
		if i < 0 {
			return spans
		}
		start := pos + i + len(nl)
		// The header block ends at the first empty line.
		var h int
		if bytes.HasPrefix(body[start:], nl) {
			h = start + len(nl)
		} else if j := bytes.Index(body[start:], append(append([]byte{}, nl...), nl...)); j >= 0 {
			h = start + j + 2*len(nl)
		} else {
			return spans
		}
		end := h
		for {
			j := bytes.Index(body[end:], delim)
			if j < 0 {
				return spans
			}
			end += j
			if boundaryEnd(body, end+len(delim)) {
				break
			}
			end++
		}
		spans = append(spans, span{h, end})
		pos = end + len(delim)
	}
}

// boundaryEnd reports whether a boundary ending at i is one: followed by
// optional spaces and a line end, or by "--".
func boundaryEnd(body []byte, i int) bool {
	rest := body[i:]
	if bytes.HasPrefix(rest, []byte("--")) {
		return true
	}
	rest = bytes.TrimLeft(rest, " \t")
	return bytes.HasPrefix(rest, []byte("\r\n")) || bytes.HasPrefix(rest, []byte("\n"))
}

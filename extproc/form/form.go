// Package form reads the text fields of a multipart/form-data request body
// that Envoy has buffered whole (the OpenAI audio and image upload
// endpoints), and rewrites its model field.
//
// Contract: Read parses with Go's mime/multipart over a bytes.Reader of the
// buffered body. File parts (a Content-Disposition with a filename) are
// skipped: their bytes are scanned once to find the next boundary, never
// copied out, never returned, never put in an error message. Text parts are
// returned in body order. Read refuses, with an error wrapping one of the
// sentinels below: a content type that is not multipart/form-data with a
// boundary (ErrContentType), a body cut short before the closing boundary
// (ErrTruncated), a part without a form-data name or any other framing
// mime/multipart rejects (ErrMalformed), more parts, longer text values or
// longer part headers than Limits allows (ErrTooLarge), a field sent twice
// unless its name ends in "[]" as the OpenAI SDKs name array fields
// (ErrDuplicate: policy would read one copy and the backend another), and
// a missing or empty model field (ErrMissingModel). Messages name fields
// and limits, never values.
//
// Cost: one pass over the body; allocations grow with the number of parts
// and the text values, not with the size of the files. Safe for concurrent
// use: nothing is shared.
package form

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"strings"
)

// Errors Read and RewriteModel wrap.
var (
	ErrContentType  = errors.New("not multipart/form-data with a boundary")
	ErrMalformed    = errors.New("malformed multipart body")
	ErrTruncated    = errors.New("multipart body ends before its closing boundary")
	ErrTooLarge     = errors.New("multipart body over a gateway limit")
	ErrDuplicate    = errors.New("multipart field sent more than once")
	ErrMissingModel = errors.New("multipart body has no model field")
)

// Limits caps what Read accepts; a zero field takes its default.
type Limits struct {
	// Parts caps the number of parts, files included (default 64).
	Parts int
	// ValueBytes caps one text field's value (default 64 KiB).
	ValueBytes int
	// HeaderBytes caps one part's header block, keys and values (default 8 KiB).
	HeaderBytes int
}

// Default limits.
const (
	DefaultParts       = 64
	DefaultValueBytes  = 64 << 10
	DefaultHeaderBytes = 8 << 10
)

func (l Limits) withDefaults() Limits {
	if l.Parts <= 0 {
		l.Parts = DefaultParts
	}
	if l.ValueBytes <= 0 {
		l.ValueBytes = DefaultValueBytes
	}
	if l.HeaderBytes <= 0 {
		l.HeaderBytes = DefaultHeaderBytes
	}
	return l
}

// Field is one text part.
type Field struct {
	Name, Value string
}

// Form is what Read found in a body.
type Form struct {
	// Model is the model field's value, never empty.
	Model string
	// Fields are the text parts in body order, the model included.
	Fields []Field
	// Files counts the file parts; FileFields names them in body order.
	Files      int
	FileFields []string
	// boundary and modelPart (the model's index among all parts) let
	// RewriteModel find the model's value again.
	boundary  string
	parts     int
	modelPart int
}

// Value returns the first text field named name.
func (f *Form) Value(name string) (string, bool) {
	for _, fl := range f.Fields {
		if fl.Name == name {
			return fl.Value, true
		}
	}
	return "", false
}

// Boundary returns the content type's boundary parameter.
func Boundary(contentType string) (string, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" {
		return "", fmt.Errorf("cannot read content type: %w", ErrContentType)
	}
	b := params["boundary"]
	if b == "" || len(b) > 70 {
		return "", fmt.Errorf("cannot read boundary: %w", ErrContentType)
	}
	return b, nil
}

// Read parses body, sent with contentType, under lim (see the package
// contract).
func Read(contentType string, body []byte, lim Limits) (*Form, error) {
	boundary, err := Boundary(contentType)
	if err != nil {
		return nil, err
	}
	lim = lim.withDefaults()
	f := &Form{boundary: boundary, modelPart: -1}
	r := multipart.NewReader(bytes.NewReader(body), boundary)
	var value []byte
	for {
		// NextRawPart: the value is read as sent, as the backend reads it
		// and as RewriteModel finds it (no quoted-printable decoding).
		p, err := r.NextRawPart()
		if err == io.EOF {
			// mime/multipart also says io.EOF when the body ends inside
			// a part's headers: only a closing boundary ends it cleanly.
			if !closed(body, boundary) {
				return nil, fmt.Errorf("cannot read part %d: %w", f.parts+1, ErrTruncated)
			}
			break
		}
		if err != nil {
			if f.parts == 0 {
				return nil, fmt.Errorf("cannot find the first boundary: %w", ErrMalformed)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("cannot read part %d: %w", f.parts+1, ErrTruncated)
			}
			return nil, fmt.Errorf("cannot read part %d: %w", f.parts+1, ErrMalformed)
		}
		if f.parts++; f.parts > lim.Parts {
			return nil, fmt.Errorf("cannot read more than %d parts: %w", lim.Parts, ErrTooLarge)
		}
		if value, err = f.readPart(p, lim, value[:0]); err != nil {
			return nil, err
		}
	}
	if f.modelPart < 0 {
		return nil, fmt.Errorf("cannot route: %w", ErrMissingModel)
	}
	return f, nil
}

// readPart reads one part: a file is skipped, a text value appended to
// f.Fields. buf is scratch space for the value, returned for reuse.
func (f *Form) readPart(p *multipart.Part, lim Limits, buf []byte) ([]byte, error) {
	defer p.Close()
	if n := headerSize(p); n > lim.HeaderBytes {
		return buf, fmt.Errorf("cannot read part %d: its headers exceed %d bytes: %w", f.parts, lim.HeaderBytes, ErrTooLarge)
	}
	disp, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	name := params["name"]
	if err != nil || disp != "form-data" || name == "" {
		return buf, fmt.Errorf("cannot read part %d: it has no form-data name: %w", f.parts, ErrMalformed)
	}
	if _, file := params["filename"]; file {
		// Scanned to the next boundary by the reader, never copied out.
		if _, err := io.Copy(io.Discard, p); err != nil {
			return buf, fmt.Errorf("cannot read file field %q: %w", name, partErr(err))
		}
		f.Files++
		f.FileFields = append(f.FileFields, name)
		return buf, nil
	}
	buf, err = readLimited(p, buf, lim.ValueBytes)
	if err != nil {
		return buf, fmt.Errorf("cannot read field %q: %w", name, partErr(err))
	}
	if len(buf) > lim.ValueBytes {
		return buf, fmt.Errorf("cannot read field %q: its value exceeds %d bytes: %w", name, lim.ValueBytes, ErrTooLarge)
	}
	if !strings.HasSuffix(name, "[]") {
		if _, dup := f.Value(name); dup {
			return buf, fmt.Errorf("cannot read field %q twice: %w", name, ErrDuplicate)
		}
	}
	v := string(buf)
	if name == "model" {
		if v == "" {
			return buf, fmt.Errorf("cannot route on an empty model field: %w", ErrMissingModel)
		}
		f.Model, f.modelPart = v, f.parts-1
	}
	f.Fields = append(f.Fields, Field{Name: name, Value: v})
	return buf, nil
}

// readLimited appends up to max+1 bytes of r to buf.
func readLimited(r io.Reader, buf []byte, limit int) ([]byte, error) {
	lr := io.LimitReader(r, int64(limit)+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// partErr classes an error reading a part's content: the body ended
// before the next boundary, or the framing is wrong.
func partErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrTruncated
	}
	return ErrMalformed
}

// closed reports whether the last boundary line of body is the closing
// one ("--boundary--").
func closed(body []byte, boundary string) bool {
	dash := "--" + boundary
	i := bytes.LastIndex(body, []byte("\n"+dash)) + 1
	if i == 0 && !bytes.HasPrefix(body, []byte(dash)) {
		return false
	}
	return bytes.HasPrefix(body[i+len(dash):], []byte("--"))
}

// headerSize is the size of a part's header keys and values.
func headerSize(p *multipart.Part) int {
	n := 0
	for k, vs := range p.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

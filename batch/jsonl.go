// Package batch is the OpenAI Batch API (docs/batch.md): files uploaded
// with purpose "batch", batches that run each of a file's lines through the
// gateway's own listener at a low priority under the bridge's admission
// window, and the output and error files in OpenAI's line format. Files,
// batches and per-line results live in a directory on local disk, so a
// batch in progress resumes after a restart without running finished lines
// again.
package batch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Limits of an input file (OpenAI's: 200 MB, 50,000 requests).
const (
	MaxFileBytes = 200 << 20
	MaxLines     = 50000
	// maxCustomID bounds a custom_id (OpenAI allows 64 characters).
	maxCustomID = 64
)

// Endpoints are the URLs a batch line may call.
var Endpoints = map[string]bool{
	"/v1/chat/completions": true,
	"/v1/embeddings":       true,
	"/v1/responses":        true,
}

// Line is one request of an input file.
type Line struct {
	CustomID string          `json:"custom_id"`
	Method   string          `json:"method"`
	URL      string          `json:"url"`
	Body     json.RawMessage `json:"body"`
}

// InputError is a bad input file: Line (1-based, 0 for the whole file) and
// what is wrong, in a sentence a client may see.
type InputError struct {
	Line int
	Msg  string
}

func (e *InputError) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("Line %d: %s", e.Line, e.Msg)
}

// ErrBadInput is what every InputError matches with errors.Is.
var ErrBadInput = errors.New("bad batch input")

// Is makes errors.Is(err, ErrBadInput) true for an InputError.
func (e *InputError) Is(target error) bool { return target == ErrBadInput }

// ParseInput checks a whole input file and returns its lines: each a JSON
// object with a unique custom_id, method POST, a url among Endpoints (and
// endpoint's when endpoint is not ""), and a body object naming a model.
// Blank lines are skipped. The first problem is returned with its line
// number; nothing of the content is echoed beyond the custom_id.
func ParseInput(data []byte, endpoint string) ([]Line, error) {
	if len(data) > MaxFileBytes {
		return nil, &InputError{Msg: fmt.Sprintf("The file is over %d bytes.", MaxFileBytes)}
	}
	var lines []Line
	seen := map[string]bool{}
	for n := 1; len(data) > 0; n++ {
		raw := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			continue
		}
		if len(lines) == MaxLines {
			return nil, &InputError{Line: n, Msg: fmt.Sprintf("A batch holds at most %d requests.", MaxLines)}
		}
		l, problem := parseLine(raw, endpoint)
		if problem != "" {
			return nil, &InputError{Line: n, Msg: problem}
		}
		if seen[l.CustomID] {
			return nil, &InputError{Line: n, Msg: fmt.Sprintf("The custom_id %q is used by an earlier line; each must be unique.", l.CustomID)}
		}
		seen[l.CustomID] = true
		lines = append(lines, l)
	}
	if len(lines) == 0 {
		return nil, &InputError{Msg: "The file holds no requests."}
	}
	return lines, nil
}

// parseLine returns raw as a Line, or what is wrong with it.
func parseLine(raw []byte, endpoint string) (Line, string) {
	var l Line
	if err := json.Unmarshal(raw, &l); err != nil {
		return l, "not a JSON object with custom_id, method, url and body."
	}
	switch {
	case l.CustomID == "" || len(l.CustomID) > maxCustomID:
		return l, fmt.Sprintf("custom_id must be 1 to %d characters.", maxCustomID)
	case l.Method != "POST":
		return l, "method must be POST."
	case !Endpoints[l.URL]:
		return l, "url must be /v1/chat/completions, /v1/embeddings or /v1/responses."
	case endpoint != "" && l.URL != endpoint:
		return l, fmt.Sprintf("url must be the batch's endpoint %s.", endpoint)
	}
	var body struct {
		Model string `json:"model"`
	}
	if len(l.Body) == 0 || l.Body[0] != '{' || json.Unmarshal(l.Body, &body) != nil {
		return l, "body must be a JSON object."
	}
	if body.Model == "" {
		return l, "body must name a model."
	}
	return l, ""
}

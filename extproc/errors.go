package extproc

import (
	"errors"
	"fmt"
)

// Sentinel errors a request can fail with. Each has one row in the refusal
// table (refusal.go) saying how every API renders it.
var (
	ErrBadJSON = errors.New("request body is not valid JSON")
	// ErrBadForm marks an upload whose multipart/form-data body the
	// gateway cannot read (audio.go, extproc/form).
	ErrBadForm         = errors.New("request body is not a valid multipart form")
	ErrMissingModel    = errors.New("request has no model")
	ErrUnknownModel    = errors.New("model does not exist")
	ErrBodyTooLarge    = errors.New("request body too large")
	ErrNoBody          = errors.New("request has no body")
	ErrUnknownPath     = errors.New("unknown path")
	ErrMethod          = errors.New("method not allowed")
	ErrBodyTruncated   = errors.New("request body arrived incomplete")
	ErrPinNotAllowed   = errors.New("model does not allow pinning a version")
	ErrForbiddenField  = errors.New("request field not allowed for the model")
	ErrVersionNotFound = errors.New("model version does not exist")
	// ErrUnsupported marks a request the model's backend protocol cannot
	// express (see translation.go).
	ErrUnsupported = errors.New("request not supported by the backend protocol")
	// ErrStateful marks a Responses API request that needs server-side state
	// (previous_response_id, store, background) toward a backend that
	// serves it only through translation, statelessly.
	ErrStateful = errors.New("request needs server-side state")
	ErrDraining = errors.New("gateway is shutting down")
)

// clientError is a request failure with the message the client sees.
type clientError struct {
	kind error
	msg  string
}

func (e *clientError) Error() string { return e.msg }
func (e *clientError) Unwrap() error { return e.kind }

// PublicMessage is the message the client sees (publicError).
func (e *clientError) PublicMessage() string { return e.msg }

func reject(kind error, format string, args ...any) error {
	return &clientError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

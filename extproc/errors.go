package extproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/extproc/ratelimit"
)

// Sentinel errors a request can fail with. Each maps to one HTTP status and
// one OpenAI error type/code at a single boundary: immediateError.
var (
	ErrBadJSON         = errors.New("request body is not valid JSON")
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
	ErrDraining    = errors.New("gateway is shutting down")
)

// clientError is a request failure with the message the client sees.
type clientError struct {
	kind error
	msg  string
}

func (e *clientError) Error() string { return e.msg }
func (e *clientError) Unwrap() error { return e.kind }

func reject(kind error, format string, args ...any) error {
	return &clientError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// openAIError is what the OpenAI API returns for a failed request.
type openAIError struct {
	Error openAIErrorBody `json:"error"`
}

type openAIErrorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// errorShape gives the HTTP status, OpenAI type and code for an error.
func errorShape(err error) (status int, typ, code string) {
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		return http.StatusUnauthorized, "invalid_request_error", "invalid_api_key"
	case errors.Is(err, auth.ErrForbidden):
		return http.StatusForbidden, "permission_error", "permission_denied"
	case errors.Is(err, auth.ErrTokenCap), errors.Is(err, auth.ErrBadRequest):
		return http.StatusBadRequest, "invalid_request_error", "invalid_request"
	case errors.Is(err, ErrBadJSON), errors.Is(err, ErrMissingModel), errors.Is(err, ErrNoBody):
		return http.StatusBadRequest, "invalid_request_error", "invalid_request"
	case errors.Is(err, ErrUnknownModel):
		return http.StatusNotFound, "invalid_request_error", "model_not_found"
	case errors.Is(err, ErrForbiddenField):
		return http.StatusBadRequest, "invalid_request_error", "field_not_allowed"
	case errors.Is(err, ErrVersionNotFound):
		return http.StatusNotFound, "invalid_request_error", "model_version_not_found"
	case errors.Is(err, ErrGRPCMethodDenied):
		return http.StatusForbidden, "permission_error", "grpc_method_not_enabled"
	case errors.Is(err, ErrPinNotAllowed):
		return http.StatusForbidden, "permission_error", "model_version_pin_not_allowed"
	case errors.Is(err, ErrUnknownPath):
		return http.StatusNotFound, "invalid_request_error", "unknown_url"
	case errors.Is(err, ErrMethod):
		return http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed"
	case errors.Is(err, ErrBodyTooLarge):
		return http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large"
	case errors.Is(err, ErrUnsupported):
		return http.StatusBadRequest, "invalid_request_error", "unsupported_by_backend"
	case errors.Is(err, ratelimit.ErrRateLimited), errors.Is(err, ratelimit.ErrTenantBusy):
		return http.StatusTooManyRequests, "requests", "rate_limit_exceeded"
	case errors.Is(err, ratelimit.ErrBackendBusy), errors.Is(err, ratelimit.ErrStoreUnavailable):
		return http.StatusServiceUnavailable, "server_error", "overloaded"
	case errors.Is(err, ErrBadTenant):
		return http.StatusBadRequest, "invalid_request_error", "invalid_tenant"
	case errors.Is(err, ErrDraining):
		return http.StatusServiceUnavailable, "server_error", "service_unavailable"
	case errors.Is(err, ErrBodyTruncated):
		return http.StatusBadRequest, "invalid_request_error", "invalid_request"
	default:
		return http.StatusInternalServerError, "server_error", "internal_error"
	}
}

// errorBody renders err as an OpenAI JSON error. Only clientError messages
// reach the client; anything else is reported as an internal error.
func errorBody(err error) (int, []byte) {
	status, typ, code := errorShape(err)
	msg := "The gateway failed to process the request."
	var ce *clientError
	var ae *auth.Error
	switch {
	case errors.As(err, &ce):
		msg = ce.msg
	case errors.As(err, &ae):
		msg = ae.Public
	}
	b, _ := json.Marshal(openAIError{Error: openAIErrorBody{Message: msg, Type: typ, Code: code}})
	return status, b
}

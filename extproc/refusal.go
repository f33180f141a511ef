package extproc

import (
	"encoding/json"
	"errors"
	"net/http"

	"google.golang.org/grpc/codes"

	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/extproc/budget"
	"github.com/streamgate/streamgate/extproc/credential"
	"github.com/streamgate/streamgate/extproc/picking"
	"github.com/streamgate/streamgate/extproc/ratelimit"
	"github.com/streamgate/streamgate/extproc/translate"
)

// refusal is how one kind of refusal looks on every API the gateway serves.
// Every renderer reads it: the OpenAI JSON error (fail), the Anthropic JSON
// error on /v1/messages (fail) and the gRPC status (grpcFail).
type refusal struct {
	// status is the HTTP status on the HTTP APIs.
	status int
	// openAIType and code are the OpenAI error's type and code. code is
	// also the metric label (telemetry's refusal) and, prefixed with
	// "streamgate_", the response code details in Envoy's access log.
	openAIType, code string
	// anthropicType is the Anthropic error's error.type.
	anthropicType string
	// grpc is the status a gRPC call gets.
	grpc codes.Code
	// retryAfter says the refusal tells the client when to retry: a
	// Retry-After header on HTTP, google.rpc.RetryInfo on gRPC, taken from
	// the ratelimit.DeniedError the refusal wraps.
	retryAfter bool
}

// refusalRow ties the sentinels a refusal wraps to how it is rendered.
type refusalRow struct {
	kinds []error
	refusal
}

// refusals is the refusal table: one row per kind of refusal, matched with
// errors.Is in order. Read-only. The "// when:" comment above each row says
// when a client gets it; docs/errors.md is generated from this table
// (make docs).
var refusals = []refusalRow{
	// when: no API key or token, or one that is unknown, expired, disabled or fails verification (auth set).
	{[]error{auth.ErrUnauthenticated}, refusal{http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "authentication_error", codes.Unauthenticated, false}},
	// when: valid credentials, but the tenant may not use this model or endpoint.
	{[]error{auth.ErrForbidden}, refusal{http.StatusForbidden, "permission_error", "permission_denied", "permission_error", codes.PermissionDenied, false}},
	// when: a malformed body: not JSON (or, on the uploads: audio, image edits, not a multipart form within its limits), no model, no or truncated body, malformed token fields, an embeddings input that is empty or not a string, strings, token ids or token-id arrays, or max_tokens above the tenant's cap.
	{[]error{auth.ErrTokenCap, auth.ErrBadRequest, ErrBadJSON, ErrBadForm, ErrMissingModel, ErrNoBody, ErrBodyTruncated},
		refusal{http.StatusBadRequest, "invalid_request_error", "invalid_request", "invalid_request_error", codes.InvalidArgument, false}},
	// when: the model is not a configured public model name.
	{[]error{ErrUnknownModel}, refusal{http.StatusNotFound, "invalid_request_error", "model_not_found", "not_found_error", codes.NotFound, false}},
	// when: the body carries a field the model's shaping.forbid lists.
	{[]error{ErrForbiddenField}, refusal{http.StatusBadRequest, "invalid_request_error", "field_not_allowed", "invalid_request_error", codes.InvalidArgument, false}},
	// when: the model's endpoints list (models[].endpoints) leaves out the API called, e.g. /v1/embeddings on a model enabled for chat only (OpenAI answers a model used on an endpoint it does not support with 404 too).
	{[]error{ErrEndpointNotEnabled}, refusal{http.StatusNotFound, "invalid_request_error", "model_endpoint_not_supported", "not_found_error", codes.NotFound, false}},
	// when: x-streamgate-model-version names a version the model does not have.
	{[]error{ErrVersionNotFound}, refusal{http.StatusNotFound, "invalid_request_error", "model_version_not_found", "not_found_error", codes.NotFound, false}},
	// when: a known gRPC method the model's backends do not enable (grpc_methods).
	{[]error{ErrGRPCMethodDenied}, refusal{http.StatusForbidden, "permission_error", "grpc_method_not_enabled", "permission_error", codes.PermissionDenied, false}},
	// when: x-streamgate-model-version is set but the model has no allow_pin, or the tenant no pin_versions.
	{[]error{ErrPinNotAllowed}, refusal{http.StatusForbidden, "permission_error", "model_version_pin_not_allowed", "permission_error", codes.PermissionDenied, false}},
	// when: a path the gateway does not serve (or an unknown gRPC service or method).
	{[]error{ErrUnknownPath}, refusal{http.StatusNotFound, "invalid_request_error", "unknown_url", "not_found_error", codes.Unimplemented, false}},
	// when: a path served with another HTTP method (e.g. GET /v1/chat/completions).
	{[]error{ErrMethod}, refusal{http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", "invalid_request_error", codes.Unimplemented, false}},
	// when: the body is larger than gateway.max_request_body_bytes (an audio upload: gateway.max_upload_bytes).
	{[]error{ErrBodyTooLarge}, refusal{http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large", "request_too_large", codes.InvalidArgument, false}},
	// when: the request uses a field or value the backend's protocol cannot express (e.g. temperature above 1 toward Anthropic), or its API cannot reach the model's backend.
	{[]error{ErrUnsupported}, refusal{http.StatusBadRequest, "invalid_request_error", "unsupported_by_backend", "invalid_request_error", codes.InvalidArgument, false}},
	// when: a /v1/responses request needs server-side state (previous_response_id, store: true, background: true) and the model's backend serves the Responses API only through translation to Chat Completions.
	{[]error{ErrStateful}, refusal{http.StatusBadRequest, "invalid_request_error", "stateful_request_not_supported", "invalid_request_error", codes.InvalidArgument, false}},
	// when: a tenant's request or token rate is spent, or its concurrent streams stayed full past limits.queue.max_wait.
	{[]error{ratelimit.ErrRateLimited, ratelimit.ErrTenantBusy}, refusal{http.StatusTooManyRequests, "requests", "rate_limit_exceeded", "rate_limit_error", codes.ResourceExhausted, true}},
	// when: the worst-case cost of the request (prompt × input price + reserved output × output price, images at their price) does not fit in a spend budget of its tenant or API key (limits.tenants[].budgets, api_keys); Retry-After is when the window frees room, with x-should-retry: false past a minute. 429 like OpenAI's insufficient_quota and LiteLLM's budget refusal; the OpenAI type is insufficient_quota, which clients already treat as not worth retrying.
	{[]error{budget.ErrExceeded}, refusal{http.StatusTooManyRequests, "insufficient_quota", "budget_exceeded", "rate_limit_error", codes.ResourceExhausted, true}},
	// when: the backend's max_in_flight stayed full, or the Redis store is unreachable without fail_open.
	{[]error{ratelimit.ErrBackendBusy, ratelimit.ErrStoreUnavailable}, refusal{http.StatusServiceUnavailable, "server_error", "overloaded", "overloaded_error", codes.Unavailable, true}},
	// when: every endpoint of a picking backend stayed saturated for picking.saturation.max_wait, or saturation.max_waiting requests already wait.
	{[]error{picking.ErrSaturated}, refusal{http.StatusServiceUnavailable, "server_error", "backend_saturated", "overloaded_error", codes.Unavailable, true}},
	// when: x-streamgate-priority, from a tenant with priority_header (or on an open gateway with gateway.priority_header), is not critical, standard or sheddable.
	{[]error{ErrBadPriority}, refusal{http.StatusBadRequest, "invalid_request_error", "invalid_priority", "invalid_request_error", codes.InvalidArgument, false}},
	// when: the tenant header (limits.tenant_header) is not a valid tenant name.
	{[]error{ErrBadTenant}, refusal{http.StatusBadRequest, "invalid_request_error", "invalid_tenant", "invalid_request_error", codes.InvalidArgument, false}},
	// when: the gateway is shutting down (SIGTERM); open streams finish, new requests are refused.
	{[]error{ErrDraining}, refusal{http.StatusServiceUnavailable, "server_error", "service_unavailable", "overloaded_error", codes.Unavailable, false}},
	// when: `streamgate epp` has no endpoint to pick, or the gateway's subset hint names none of the backend's endpoints.
	{[]error{ErrNoEndpoint}, refusal{http.StatusServiceUnavailable, "server_error", "no_endpoint", "overloaded_error", codes.Unavailable, false}},
	// when: every eligible endpoint is past backends[].picking.saturation and the request is shed: every request under `streamgate epp`, a sheddable one (priority) in the gateway.
	{[]error{ErrSaturated, picking.ErrShed}, refusal{http.StatusTooManyRequests, "requests", "saturated", "rate_limit_error", codes.ResourceExhausted, true}},
	// when: the gateway cannot obtain the credentials it signs a hosted provider's requests with (AWS credential chain empty or failing); the backend is not called.
	{[]error{credential.ErrUnavailable}, refusal{http.StatusBadGateway, "server_error", "upstream_credentials_unavailable", "api_error", codes.Unavailable, false}},
	// when: a service request (docs/services.md) reaches another tenant's part of the service: a path pattern or body rule naming {tenant} matches only with another tenant's name, or the body rule's field is missing.
	{[]error{ErrOutOfScope}, refusal{http.StatusForbidden, "permission_error", "out_of_scope", "permission_error", codes.PermissionDenied, false}},
	// when: no operation of the service matches the request's method and path.
	{[]error{ErrUnknownOperation}, refusal{http.StatusNotFound, "invalid_request_error", "unknown_operation", "not_found_error", codes.Unimplemented, false}},
	// when: a service request's path holds dot segments, empty segments, encoded slashes or a malformed %-escape.
	{[]error{ErrServicePath}, refusal{http.StatusBadRequest, "invalid_request_error", "invalid_path", "invalid_request_error", codes.InvalidArgument, false}},
	// --- event-stream bridge (bridgerefusal.go, docs/streams.md): dead-letter and reply bodies, never an HTTP answer

	// when: a message on a bridge's request stream is not a valid envelope: not JSON, no id, reply_to or body, or a bad deadline or priority.
	{[]error{ErrBadEnvelope}, refusal{http.StatusBadRequest, "invalid_request_error", "invalid_envelope", "invalid_request_error", codes.InvalidArgument, false}},
	// when: a bridge envelope's credential names no entry of bridge.credentials.
	{[]error{ErrUnknownCredentialRef}, refusal{http.StatusUnauthorized, "invalid_request_error", "unknown_credential", "authentication_error", codes.Unauthenticated, false}},
	// when: a bridge envelope's deadline passed before the request was answered.
	{[]error{ErrDeadlineExceeded}, refusal{http.StatusGatewayTimeout, "server_error", "deadline_exceeded", "api_error", codes.DeadlineExceeded, false}},
	// when: the bridge got 429, 5xx or no answer on each of bridge.max_attempts attempts.
	{[]error{ErrAttemptsExhausted}, refusal{http.StatusServiceUnavailable, "server_error", "attempts_exhausted", "overloaded_error", codes.Unavailable, false}},

	// --- end of the bridge's rows
}

// internalRefusal is the row of any error the table does not name: the
// client learns only that the gateway failed (internalMessage).
var internalRefusal = refusal{http.StatusInternalServerError, "server_error", "internal_error", "api_error", codes.Internal, false}

// internalMessage is what a client sees for an error without a vetted
// public message.
const internalMessage = "The gateway failed to process the request."

// refusalOf returns err's row of the refusal table.
func refusalOf(err error) refusal {
	for i := range refusals {
		for _, k := range refusals[i].kinds {
			if errors.Is(err, k) {
				return refusals[i].refusal
			}
		}
	}
	return internalRefusal
}

// publicError is an error whose message was written for clients:
// clientError here, auth.Error for authentication and authorization.
type publicError interface {
	error
	PublicMessage() string
}

var (
	_ publicError = (*clientError)(nil)
	_ publicError = (*auth.Error)(nil)
)

// publicMessage is the text a client may see for err: the public message
// of the first publicError in its chain, else internalMessage.
func publicMessage(err error) string {
	var pe publicError
	if errors.As(err, &pe) {
		return pe.PublicMessage()
	}
	return internalMessage
}

// retryAfterOf returns the admission denial telling the client when to
// retry, or false when the refusal's row has no Retry-After or err carries
// no delay.
func (r refusal) retryAfterOf(err error) (*ratelimit.DeniedError, bool) {
	var de *ratelimit.DeniedError
	if !r.retryAfter || !errors.As(err, &de) {
		return nil, false
	}
	return de, true
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

// openAIBody renders the refusal as an OpenAI JSON error with msg.
func (r refusal) openAIBody(msg string) []byte {
	b, _ := json.Marshal(openAIError{Error: openAIErrorBody{Message: msg, Type: r.openAIType, Code: r.code}})
	return b
}

// anthropicBody renders the refusal as an Anthropic JSON error with msg.
func (r refusal) anthropicBody(msg string) []byte {
	return translate.AnthropicErrorOfType(r.anthropicType, msg)
}

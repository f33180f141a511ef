package extproc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/extproc/ratelimit"
)

// TestMissingKeyMessageSameOnEveryAPI (issue 14): a request without an API
// key is told "Missing credentials" on /v1/messages as on
// /v1/chat/completions and gRPC. Before the refusal table, the Anthropic
// renderer only knew clientError messages and answered "The gateway failed
// to process the request." with the 401.
func TestMissingKeyMessageSameOnEveryAPI(t *testing.T) {
	f := newAccessFixture(t)
	for name, path := range map[string]string{"openai": "/v1/chat/completions", "anthropic": "/v1/messages"} {
		t.Run(name, func(t *testing.T) {
			ir := f.processor(t).handle(headersMsg("POST", path, map[string]string{"content-type": "application/json"}, false)).GetImmediateResponse()
			require.NotNil(t, ir)
			assert.EqualValues(t, http.StatusUnauthorized, ir.GetStatus().GetCode())
			assert.Contains(t, string(ir.GetBody()), "Missing credentials")
			assert.NotContains(t, string(ir.GetBody()), internalMessage)
		})
	}
	t.Run("grpc", func(t *testing.T) {
		p := f.processor(t)
		ir := p.handle(headersMsg("POST", streamPath, map[string]string{"content-type": "application/grpc", contract.ModelHeader: "gpt-small"}, false)).GetImmediateResponse()
		require.NotNil(t, ir)
		assert.Equal(t, uint32(codes.Unauthenticated), ir.GetGrpcStatus().GetStatus())
		assert.Contains(t, setHeaders(ir.GetHeaders())["grpc-message"], "Missing credentials")
	})
}

// refusalCase is one refusal as a request path raises it.
type refusalCase struct {
	err                           error
	status                        int
	openAIType, code, anthropicTy string
	grpc                          codes.Code
	retryAfter                    string // Retry-After header, "" for none
	public                        string // message the client sees
}

func refusalCases() map[string]refusalCase {
	denied := func(kind error) error {
		return &clientError{kind: &ratelimit.DeniedError{Kind: kind, RetryAfter: 1500 * time.Millisecond, What: "requests per minute"}, msg: "Retry later."}
	}
	return map[string]refusalCase{
		"missing key":        {&auth.Error{Kind: auth.ErrUnauthenticated, Public: "Missing credentials.", Detail: "no credentials"}, 401, "invalid_request_error", "invalid_api_key", "authentication_error", codes.Unauthenticated, "", "Missing credentials."},
		"tenant forbidden":   {auth.Denied(&auth.Tenant{Name: "guest"}, "model", "m"), 403, "permission_error", "permission_denied", "permission_error", codes.PermissionDenied, "", ""},
		"token cap":          {&auth.Error{Kind: auth.ErrTokenCap, Public: "max_tokens is above 100."}, 400, "invalid_request_error", "invalid_request", "invalid_request_error", codes.InvalidArgument, "", "max_tokens is above 100."},
		"bad token field":    {&auth.Error{Kind: auth.ErrBadRequest, Public: "max_tokens must be a number."}, 400, "invalid_request_error", "invalid_request", "invalid_request_error", codes.InvalidArgument, "", "max_tokens must be a number."},
		"bad json":           {reject(ErrBadJSON, "Bad JSON."), 400, "invalid_request_error", "invalid_request", "invalid_request_error", codes.InvalidArgument, "", "Bad JSON."},
		"too deep":           {reject(ErrBadJSON, "Too deep."), 400, "invalid_request_error", "invalid_request", "invalid_request_error", codes.InvalidArgument, "", "Too deep."},
		"missing model":      {reject(ErrMissingModel, "No model."), 400, "invalid_request_error", "invalid_request", "invalid_request_error", codes.InvalidArgument, "", "No model."},
		"no body":            {reject(ErrNoBody, "No body."), 400, "invalid_request_error", "invalid_request", "invalid_request_error", codes.InvalidArgument, "", "No body."},
		"body truncated":     {reject(ErrBodyTruncated, "Cut."), 400, "invalid_request_error", "invalid_request", "invalid_request_error", codes.InvalidArgument, "", "Cut."},
		"unknown model":      {reject(ErrUnknownModel, "No such model."), 404, "invalid_request_error", "model_not_found", "not_found_error", codes.NotFound, "", "No such model."},
		"shaping field":      {reject(ErrForbiddenField, "Field not allowed."), 400, "invalid_request_error", "field_not_allowed", "invalid_request_error", codes.InvalidArgument, "", "Field not allowed."},
		"unknown version":    {reject(ErrVersionNotFound, "No version."), 404, "invalid_request_error", "model_version_not_found", "not_found_error", codes.NotFound, "", "No version."},
		"grpc method":        {reject(ErrGRPCMethodDenied, "Method off."), 403, "permission_error", "grpc_method_not_enabled", "permission_error", codes.PermissionDenied, "", "Method off."},
		"pin not allowed":    {reject(ErrPinNotAllowed, "No pin."), 403, "permission_error", "model_version_pin_not_allowed", "permission_error", codes.PermissionDenied, "", "No pin."},
		"unknown path":       {reject(ErrUnknownPath, "No path."), 404, "invalid_request_error", "unknown_url", "not_found_error", codes.Unimplemented, "", "No path."},
		"method":             {reject(ErrMethod, "Use POST."), 405, "invalid_request_error", "method_not_allowed", "invalid_request_error", codes.Unimplemented, "", "Use POST."},
		"body cap":           {reject(ErrBodyTooLarge, "Too large."), 413, "invalid_request_error", "request_too_large", "request_too_large", codes.InvalidArgument, "", "Too large."},
		"unsupported":        {reject(ErrUnsupported, "Cannot translate."), 400, "invalid_request_error", "unsupported_by_backend", "invalid_request_error", codes.InvalidArgument, "", "Cannot translate."},
		"rate limited":       {denied(ratelimit.ErrRateLimited), 429, "requests", "rate_limit_exceeded", "rate_limit_error", codes.ResourceExhausted, "2", "Retry later."},
		"tenant busy":        {denied(ratelimit.ErrTenantBusy), 429, "requests", "rate_limit_exceeded", "rate_limit_error", codes.ResourceExhausted, "2", "Retry later."},
		"backend busy":       {denied(ratelimit.ErrBackendBusy), 503, "server_error", "overloaded", "overloaded_error", codes.Unavailable, "2", "Retry later."},
		"store unavailable":  {denied(ratelimit.ErrStoreUnavailable), 503, "server_error", "overloaded", "overloaded_error", codes.Unavailable, "2", "Retry later."},
		"bad tenant":         {reject(ErrBadTenant, "Bad tenant."), 400, "invalid_request_error", "invalid_tenant", "invalid_request_error", codes.InvalidArgument, "", "Bad tenant."},
		"draining":           {reject(ErrDraining, "Shutting down."), 503, "server_error", "service_unavailable", "overloaded_error", codes.Unavailable, "", "Shutting down."},
		"no endpoint":        {reject(ErrNoEndpoint, "No server."), 503, "server_error", "no_endpoint", "overloaded_error", codes.Unavailable, "", "No server."},
		"saturated":          {denied(ErrSaturated), 429, "requests", "saturated", "rate_limit_error", codes.ResourceExhausted, "2", "Retry later."},
		"admission canceled": {fmt.Errorf("cannot admit: %w", context.Canceled), 500, "server_error", "internal_error", "api_error", codes.Internal, "", internalMessage},
		"internal":           {errors.New("secret detail"), 500, "server_error", "internal_error", "api_error", codes.Internal, "", internalMessage},
	}
}

// TestRefusalRenderedOnEveryAPI renders every refusal of the table on the
// OpenAI, Anthropic and gRPC APIs and checks status, shape and message.
func TestRefusalRenderedOnEveryAPI(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for name, tc := range refusalCases() {
		want := tc.public
		if want == "" {
			var ae *auth.Error
			require.ErrorAs(t, tc.err, &ae)
			want = ae.Public
		}
		t.Run(name+"/openai", func(t *testing.T) {
			p := newProcessor(nil, 1<<20, log, nil)
			p.endpoint = endpointChat
			ir := p.fail(tc.err).GetImmediateResponse()
			require.NotNil(t, ir)
			assert.EqualValues(t, tc.status, ir.GetStatus().GetCode())
			assert.Equal(t, "streamgate_"+tc.code, ir.GetDetails())
			assert.Equal(t, tc.code, p.obs.errorType, "metric label")
			var body map[string]map[string]any
			require.NoError(t, json.Unmarshal(ir.GetBody(), &body))
			assert.Equal(t, map[string]any{"message": want, "type": tc.openAIType, "code": tc.code, "param": nil}, body["error"])
			checkHTTPHeaders(t, tc, setHeaders(ir.GetHeaders()))
		})
		t.Run(name+"/anthropic", func(t *testing.T) {
			p := newProcessor(nil, 1<<20, log, nil)
			p.endpoint = endpointMessages
			ir := p.fail(tc.err).GetImmediateResponse()
			require.NotNil(t, ir)
			assert.EqualValues(t, tc.status, ir.GetStatus().GetCode())
			var body map[string]any
			require.NoError(t, json.Unmarshal(ir.GetBody(), &body))
			assert.Equal(t, map[string]any{"type": "error", "error": map[string]any{"type": tc.anthropicTy, "message": want}}, body)
			checkHTTPHeaders(t, tc, setHeaders(ir.GetHeaders()))
		})
		t.Run(name+"/grpc", func(t *testing.T) {
			p := newProcessor(nil, 1<<20, log, nil)
			p.grpc, p.endpoint = true, endpointGRPC
			ir := p.fail(tc.err).GetImmediateResponse()
			require.NotNil(t, ir)
			assert.EqualValues(t, http.StatusOK, ir.GetStatus().GetCode(), "trailers-only response")
			assert.Equal(t, uint32(tc.grpc), ir.GetGrpcStatus().GetStatus())
			h := setHeaders(ir.GetHeaders())
			assert.Equal(t, "application/grpc", h["content-type"])
			assert.Equal(t, itoa(int(tc.grpc)), h["grpc-status"])
			assert.Equal(t, encodeGRPCMessage(want), h["grpc-message"])
			_, hasDetails := h["grpc-status-details-bin"]
			assert.Equal(t, tc.retryAfter != "", hasDetails, "RetryInfo")
			assert.Equal(t, tc.grpc, p.grpcCode, "metric label")
		})
	}
}

func checkHTTPHeaders(t *testing.T, tc refusalCase, h map[string]string) {
	t.Helper()
	assert.Equal(t, "application/json", h["content-type"])
	assert.Equal(t, tc.retryAfter, h["retry-after"])
	_, challenged := h["www-authenticate"]
	assert.Equal(t, tc.status == http.StatusUnauthorized, challenged)
}

// TestRefusalTableCoversEverySentinel: every sentinel a request can be
// refused with has a row, so none falls through to a 500.
func TestRefusalTableCoversEverySentinel(t *testing.T) {
	for _, kind := range []error{
		auth.ErrUnauthenticated, auth.ErrForbidden, auth.ErrTokenCap, auth.ErrBadRequest,
		ErrBadJSON, ErrMissingModel, ErrUnknownModel, ErrBodyTooLarge, ErrNoBody, ErrUnknownPath, ErrMethod,
		ErrBodyTruncated, ErrPinNotAllowed, ErrForbiddenField, ErrVersionNotFound, ErrUnsupported, ErrDraining,
		ErrGRPCMethodDenied, ErrBadTenant, ErrNoEndpoint, ErrSaturated,
		ratelimit.ErrRateLimited, ratelimit.ErrTenantBusy, ratelimit.ErrBackendBusy, ratelimit.ErrStoreUnavailable,
	} {
		assert.NotEqual(t, internalRefusal, refusalOf(kind), "%v has no row", kind)
	}
}

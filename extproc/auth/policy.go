package auth

import (
	"fmt"
	"path"

	"github.com/tidwall/sjson"

	"github.com/streamgate/streamgate/config"
)

// Tenant is a verified client organisation and its policy. It is immutable
// and shared by every request of the tenant.
type Tenant struct {
	// Name is the tenant's configured name, safe to log and to send upstream.
	Name string
	// MaxTokens caps a request's max_tokens; 0 means no cap.
	MaxTokens int64
	// PinVersions lets the tenant choose a model version by header.
	PinVersions bool
	// Priority is the tenant's default request priority (config.Priority*;
	// "" is standard); PriorityHeader lets its requests override it with
	// contract.PriorityHeader.
	Priority       string
	PriorityHeader bool

	models    []string
	endpoints []string
	// services maps a service to the operation globs granted (service.go).
	services map[string][]string
}

func newTenant(tc config.Tenant) *Tenant {
	return &Tenant{Name: tc.Name, MaxTokens: tc.MaxTokens, PinVersions: tc.PinVersions, Priority: tc.Priority, PriorityHeader: tc.PriorityHeader, models: tc.Models, endpoints: tc.Endpoints, services: serviceGrants(tc.Services)}
}

// AllowsModel reports whether the tenant may use the public model name.
// Patterns follow path.Match; a lone "*" matches every name, including
// names with '/'.
func (t *Tenant) AllowsModel(model string) bool {
	for _, g := range t.models {
		if g == "*" || g == model {
			return true
		}
		if ok, _ := path.Match(g, model); ok {
			return true
		}
	}
	return false
}

// AllowsEndpoint reports whether the tenant may call the API path (no query).
// A tenant without an endpoint list may call every endpoint.
func (t *Tenant) AllowsEndpoint(p string) bool {
	if len(t.endpoints) == 0 {
		return true
	}
	for _, g := range t.endpoints {
		if ok, _ := path.Match(g, p); ok {
			return true
		}
	}
	return false
}

// Denied returns the 403 error for a tenant refused a model or endpoint.
func Denied(t *Tenant, what, name string) error {
	return forbidden(fmt.Sprintf("You do not have access to the %s `%s`.", what, name),
		fmt.Sprintf("tenant %q may not use %s %q", t.Name, what, name))
}

// TokenRequest is the output a request asks for, as the gateway read it
// from the body after checking its types and spelling (extproc
// parseRequest): MaxTokens and MaxCompletionTokens are -1 when absent or
// null; N, the number of choices, is at least 1.
type TokenRequest struct {
	MaxTokens, MaxCompletionTokens, N int64
	// Field is the name MaxTokens was read from, which refusals name and
	// a cap is injected as: "" means max_tokens; the Responses API's is
	// max_output_tokens.
	Field string
}

// ApplyTokenCap enforces the tenant's cap on the output a request may ask
// for: each token field times n must stay within it (ErrTokenCap). A
// request asking for nothing gets "max_tokens": cap/n added when inject is
// true (completion endpoints). It returns the body to send, which is body
// itself unless a field was added. Cost: nothing unless a field is added;
// the body was read once already.
func (t *Tenant) ApplyTokenCap(body []byte, req TokenRequest, inject bool) ([]byte, error) {
	if t == nil || t.MaxTokens == 0 {
		return body, nil
	}
	n := max(req.N, 1)
	// Each choice may use the field's value: v×n > cap exactly when
	// v > cap/n, which cannot overflow.
	per := t.MaxTokens / n
	found := false
	field := req.Field
	if field == "" {
		field = "max_tokens"
	}
	for _, f := range [...]struct {
		name string
		v    int64
	}{{field, req.MaxTokens}, {"max_completion_tokens", req.MaxCompletionTokens}} {
		if f.v < 0 {
			continue
		}
		if f.v > per {
			return nil, capError(t, f.name, f.v, n)
		}
		found = true
	}
	if found || !inject {
		return body, nil
	}
	if per == 0 {
		return nil, capError(t, field, 1, n)
	}
	out, err := sjson.SetBytes(body, field, per)
	if err != nil {
		return nil, fmt.Errorf("cannot set %s: %w", field, err)
	}
	return out, nil
}

// capError is the refusal of field=v with n choices above t's cap.
func capError(t *Tenant, field string, v, n int64) error {
	if n == 1 {
		return &Error{Kind: ErrTokenCap,
			Public: fmt.Sprintf("%s is %d; your limit is %d.", field, v, t.MaxTokens),
			Detail: fmt.Sprintf("tenant %q asked for %s=%d above its cap %d", t.Name, field, v, t.MaxTokens)}
	}
	return &Error{Kind: ErrTokenCap,
		Public: fmt.Sprintf("%s is %d for each of n=%d choices; your limit is %d tokens per request.", field, v, n, t.MaxTokens),
		Detail: fmt.Sprintf("tenant %q asked for %s=%d with n=%d above its cap %d", t.Name, field, v, n, t.MaxTokens)}
}

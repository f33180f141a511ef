package auth

import (
	"fmt"
	"path"
	"strconv"

	"github.com/tidwall/gjson"
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

	models    []string
	endpoints []string
}

func newTenant(tc config.Tenant) *Tenant {
	return &Tenant{Name: tc.Name, MaxTokens: tc.MaxTokens, PinVersions: tc.PinVersions, models: tc.Models, endpoints: tc.Endpoints}
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

// tokenFields are the request fields that bound a completion's length.
var tokenFields = [...]string{"max_tokens", "max_completion_tokens"}

// ApplyTokenCap enforces the tenant's max_tokens cap on a JSON request body
// (already validated as a JSON object). A request asking for more than the
// cap fails with ErrTokenCap; one asking for nothing gets "max_tokens": cap
// added when inject is true (completion endpoints). It returns the body to
// send, which is body itself unless a field was added. Cost without a cap:
// nothing; with one: one scan of the top-level keys.
func (t *Tenant) ApplyTokenCap(body []byte, inject bool) ([]byte, error) {
	if t == nil || t.MaxTokens == 0 {
		return body, nil
	}
	found := false
	var ferr error
	seen := [len(tokenFields)]bool{}
	gjson.ParseBytes(body).ForEach(func(k, v gjson.Result) bool {
		for i, f := range tokenFields {
			if k.Str != f {
				continue
			}
			// A repeated or escaped key could let a backend read another
			// value than the one checked here.
			if seen[i] || len(k.Raw) != len(f)+2 {
				ferr = &Error{Kind: ErrBadRequest, Public: fmt.Sprintf("The request body repeats or escapes the %q field.", f), Detail: "token field repeated or escaped"}
				return false
			}
			seen[i] = true
			if v.Type == gjson.Null {
				continue
			}
			n, err := strconv.ParseInt(v.Raw, 10, 64)
			if v.Type != gjson.Number || err != nil || n < 0 {
				ferr = &Error{Kind: ErrBadRequest, Public: fmt.Sprintf("%s must be a non-negative integer.", f), Detail: "token field is not an integer"}
				return false
			}
			if n > t.MaxTokens {
				ferr = &Error{Kind: ErrTokenCap,
					Public: fmt.Sprintf("%s is %d; your limit is %d.", f, n, t.MaxTokens),
					Detail: fmt.Sprintf("tenant %q asked for %s=%d above its cap %d", t.Name, f, n, t.MaxTokens)}
				return false
			}
			found = true
		}
		return true
	})
	if ferr != nil {
		return nil, ferr
	}
	if found || !inject {
		return body, nil
	}
	out, err := sjson.SetBytes(body, "max_tokens", t.MaxTokens)
	if err != nil {
		return nil, fmt.Errorf("cannot set max_tokens: %w", err)
	}
	return out, nil
}

package extproc

import (
	"context"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/auth"
)

// wwwAuthenticate is sent with every 401 (RFC 6750).
const wwwAuthenticate = `Bearer realm="streamgate"`

// authenticate ties the request to a tenant when auth is configured and
// checks that the tenant may call the endpoint. It returns an auth.Error to
// refuse the request; with auth off it always passes.
func (p *processor) authenticate(authz, apiKey []string, path string) error {
	if !p.auth.Required() {
		return nil
	}
	t, err := p.authenticateCredential(authz, apiKey)
	if err != nil {
		return err
	}
	p.tenant, p.Tenant = t, t.Name
	if p.endpoint != endpointNone && !t.AllowsEndpoint(path) {
		return auth.Denied(t, "endpoint", path)
	}
	return nil
}

// authenticateCredential finds the tenant of the API key or JWT the request
// presents or, presenting none, of its verified client certificate.
func (p *processor) authenticateCredential(authz, apiKey []string) (*auth.Tenant, error) {
	cred, err := auth.ParseCredential(authz, apiKey)
	if err != nil {
		if auth.IsMissing(err) && p.peer != (auth.Peer{}) {
			return p.auth.AuthenticatePeer(p.peer)
		}
		return nil, err
	}
	ctx := p.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	t, key, err := p.auth.AuthenticateKey(ctx, cred)
	p.apiKey = key
	return t, err
}

// peerOf reads the verified client certificate's identity from the
// attributes Envoy sends with the request headers (only where clients may
// present certificates; xds requestAttributes).
func peerOf(req *extprocsvcv3.ProcessingRequest) auth.Peer {
	f := req.GetAttributes()[contract.ExtProcFilter].GetFields()
	if len(f) == 0 {
		return auth.Peer{}
	}
	return auth.Peer{
		URISAN:  f[contract.PeerURISANAttribute].GetStringValue(),
		DNSSAN:  f[contract.PeerDNSSANAttribute].GetStringValue(),
		Subject: f[contract.PeerSubjectAttribute].GetStringValue(),
	}
}

// requestHeaderMutation removes client-sent internal headers and, when auth
// is on, the client's credential headers, and sets the verified tenant in
// the configured header. It returns nil when there is nothing to change.
func (p *processor) requestHeaderMutation(strip []string, hasCredential bool) *extprocsvcv3.HeaderMutation {
	if p.tenant == nil {
		if len(strip) == 0 {
			return nil
		}
		return &extprocsvcv3.HeaderMutation{RemoveHeaders: strip}
	}
	th := p.auth.TenantHeader()
	remove := make([]string, 0, len(strip)+2)
	for _, k := range strip {
		if k != th { // overwritten below; never both removed and set
			remove = append(remove, k)
		}
	}
	if hasCredential {
		remove = append(remove, auth.HeaderAuthorization, auth.HeaderAPIKey)
	}
	return &extprocsvcv3.HeaderMutation{RemoveHeaders: remove, SetHeaders: []*corev3.HeaderValueOption{header(th, p.Tenant)}}
}

// authorizeModel refuses a model the tenant may not use, before the model
// is looked up, so a tenant cannot learn which models exist.
func (p *processor) authorizeModel(model string) error {
	if p.tenant == nil || p.tenant.AllowsModel(model) {
		return nil
	}
	return auth.Denied(p.tenant, "model", model)
}

// authorizePin refuses a version pin from a tenant that may not pin. With
// auth off, the model's allow_pin alone decides (Routes.Pick).
func (p *processor) authorizePin() error {
	if p.pin == "" || p.tenant == nil || p.tenant.PinVersions {
		return nil
	}
	return reject(ErrPinNotAllowed, "Your tenant may not choose a model version.")
}

// applyTokenCap enforces the tenant's max_tokens cap; completion endpoints
// without a max_tokens get the cap set. On /v1/responses the cap applies
// to max_output_tokens, set when absent.
func (p *processor) applyTokenCap(body []byte) ([]byte, error) {
	if p.tenant == nil {
		return body, nil
	}
	if p.endpoint == endpointResponses {
		req := auth.TokenRequest{MaxTokens: p.info.MaxOutputTokens, MaxCompletionTokens: -1, N: 1, Field: "max_output_tokens"}
		return p.tenant.ApplyTokenCap(body, req, true)
	}
	return p.tenant.ApplyTokenCap(body, p.info.Tokens, p.endpoint == endpointChat || p.endpoint == endpointCompletions)
}

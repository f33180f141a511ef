// Package auth ties each request to a tenant and decides what it may do.
// It verifies API keys (stored as SHA-256 hashes) and JWTs from configured
// OIDC issuers, holds each tenant's policy (models, endpoints, max_tokens
// cap) and the credentials the gateway itself sends to backends.
//
// Nothing in this package logs or returns a presented credential: error
// texts name what was wrong, never the key or token.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc/credential"
)

// Sentinel kinds of failure; match with errors.Is.
var (
	// ErrUnauthenticated: credentials missing or not valid (HTTP 401).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden: valid credentials, but the tenant may not do this (HTTP 403).
	ErrForbidden = errors.New("forbidden")
	// ErrTokenCap: the request asks for more tokens than the tenant's cap (HTTP 400).
	ErrTokenCap = errors.New("max_tokens above the tenant's cap")
	// ErrBadRequest: the body's token fields are malformed (HTTP 400).
	ErrBadRequest = errors.New("malformed token limit")
)

const invalidCredential = "Incorrect API key or token provided."

// Error is an authentication or authorization failure. Error returns the
// log-safe detail for operators; Public is the message the client sees.
// Neither ever holds a credential.
type Error struct {
	Kind   error
	Public string
	Detail string
}

func (e *Error) Error() string { return e.Detail }
func (e *Error) Unwrap() error { return e.Kind }

// PublicMessage returns Public, the message the client sees.
func (e *Error) PublicMessage() string { return e.Public }

func unauthenticated(public, detail string) error {
	return &Error{Kind: ErrUnauthenticated, Public: public, Detail: detail}
}

func forbidden(public, detail string) error {
	return &Error{Kind: ErrForbidden, Public: public, Detail: detail}
}

// verifyTimeout bounds one JWT verification, including a JWKS refresh an
// unknown key id may trigger; it stays well under Envoy's message timeout.
const verifyTimeout = time.Second

// Options tune an Authenticator. The zero value is ready to use.
type Options struct {
	// Log receives JWKS refresh failures (default slog.Default()).
	Log *slog.Logger
	// Now is the clock for key expiry and JWT time claims (default time.Now).
	Now func() time.Time
	// HTTPClient fetches JWKS documents (default: a client with a 10s timeout).
	HTTPClient *http.Client
}

// Authenticator verifies credentials and holds tenants' policies and the
// backends' upstream credentials for one config. It is immutable after New
// and safe for concurrent use. A nil *Authenticator requires nothing and
// injects nothing.
type Authenticator struct {
	required     bool
	tenantHeader string
	tenants      map[string]*Tenant
	keys         map[[sha256.Size]byte]*apiKey
	issuers      map[string]*issuer
	upstream     map[string]UpstreamHeader
	certs        []certRule
	signers      map[string]credential.Signer
	now          func() time.Time
	verified     tokenCache
}

type apiKey struct {
	name     string
	hash     [sha256.Size]byte
	tenant   *Tenant
	expires  time.Time // zero: never
	disabled bool
}

// New builds the Authenticator for cfg. JWKS documents are fetched in the
// background until ctx ends; an issuer that is down at start only fails the
// tokens it signed. It fails when an upstream credential cannot be read.
func New(ctx context.Context, cfg *config.Config, opts Options) (*Authenticator, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	a := &Authenticator{now: opts.Now}
	up, err := loadUpstream(cfg.Backends)
	if err != nil {
		return nil, err
	}
	a.upstream = up
	if a.signers, err = loadSigners(ctx, cfg.Backends, opts.Log); err != nil {
		return nil, err
	}
	if cfg.Auth == nil {
		return a, nil
	}
	a.required = true
	a.tenantHeader = cfg.Auth.TenantHeader
	a.tenants = make(map[string]*Tenant, len(cfg.Auth.Tenants))
	a.keys = map[[sha256.Size]byte]*apiKey{}
	for _, tc := range cfg.Auth.Tenants {
		t := newTenant(tc)
		a.tenants[t.Name] = t
		for _, kc := range tc.APIKeys {
			k, err := newAPIKey(kc, t)
			if err != nil {
				return nil, err
			}
			a.keys[k.hash] = k
		}
	}
	a.certs = certRules(cfg.Auth, a.tenants)
	a.issuers = make(map[string]*issuer, len(cfg.Auth.JWT))
	for _, ic := range cfg.Auth.JWT {
		is, err := newIssuer(ctx, ic, a, opts)
		if err != nil {
			return nil, err
		}
		a.issuers[ic.Issuer] = is
	}
	return a, nil
}

func newAPIKey(kc config.APIKey, t *Tenant) (*apiKey, error) {
	raw, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(kc.Hash), config.KeyHashPrefix))
	if err != nil || len(raw) != sha256.Size {
		return nil, fmt.Errorf("cannot decode API key hash of tenant %q: want %s and 64 hex digits", t.Name, config.KeyHashPrefix)
	}
	k := &apiKey{name: kc.Name, tenant: t, disabled: kc.Disabled}
	copy(k.hash[:], raw)
	if kc.Expires != nil {
		k.expires = *kc.Expires
	}
	return k, nil
}

// Required reports whether requests need credentials.
func (a *Authenticator) Required() bool { return a != nil && a.required }

// TenantHeader is the header the verified tenant name is sent upstream in.
func (a *Authenticator) TenantHeader() string { return a.tenantHeader }

// Authenticate verifies a credential returned by ParseCredential and
// returns its tenant. A configured API key wins; otherwise a token shaped
// like a JWT goes to the issuer named by its "iss" claim when JWT issuers
// are configured, and anything else is an unknown key. Cost: one SHA-256 and a map lookup for a key; for a JWT one
// signature check (keys cached; an unknown key id may trigger one
// rate-limited JWKS fetch, bounded by ctx and one second), or a cache hit
// for a token that verified within the last minute.
func (a *Authenticator) Authenticate(ctx context.Context, credential string) (*Tenant, error) {
	t, _, err := a.AuthenticateKey(ctx, credential)
	return t, err
}

// AuthenticateKey is Authenticate that also returns the name of the API
// key presented ("" for a JWT or an unnamed key): per-key budgets count
// by it. Same cost; the name is the config's string, not a copy.
func (a *Authenticator) AuthenticateKey(ctx context.Context, credential string) (*Tenant, string, error) {
	sum := sha256.Sum256([]byte(credential))
	k := a.keys[sum]
	if k == nil && len(a.issuers) > 0 && looksLikeJWT(credential) {
		t, err := a.verifyJWT(ctx, credential, sum)
		return t, "", err
	}
	t, err := a.verifyKey(k, sum)
	if err != nil {
		return nil, "", err
	}
	return t, k.name, nil
}

// verifyKey checks the key found under the presented credential's hash.
func (a *Authenticator) verifyKey(k *apiKey, sum [sha256.Size]byte) (*Tenant, error) {
	if k == nil || subtle.ConstantTimeCompare(k.hash[:], sum[:]) != 1 {
		return nil, unauthenticated(invalidCredential, "unknown API key")
	}
	if k.disabled {
		return nil, unauthenticated(invalidCredential, fmt.Sprintf("API key %q of tenant %q is disabled", k.name, k.tenant.Name))
	}
	if !k.expires.IsZero() && !a.now().Before(k.expires) {
		return nil, unauthenticated("The API key has expired.", fmt.Sprintf("API key %q of tenant %q expired", k.name, k.tenant.Name))
	}
	return k.tenant, nil
}

// Tenant returns the configured tenant with the given name, or nil.
func (a *Authenticator) Tenant(name string) *Tenant {
	if a == nil {
		return nil
	}
	return a.tenants[name]
}

package config

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/streamgate/streamgate/contract"
)

// Auth defaults applied when a field is left empty.
const (
	DefaultTenantHeader          = contract.HeaderPrefix + "tenant"
	DefaultTenantClaim           = "sub"
	DefaultClockSkew             = 30 * time.Second
	DefaultJWKSRefreshInterval   = time.Hour
	DefaultJWKSMinRefreshBetween = time.Minute
	// KeyHashPrefix starts every stored API key hash: "sha256:" + 64 hex digits.
	KeyHashPrefix = "sha256:"
)

// DefaultJWTAlgorithms are the signature algorithms an issuer accepts when
// it lists none. HMAC algorithms and "none" are never accepted.
var DefaultJWTAlgorithms = []string{"RS256", "ES256", "EdDSA"}

// allowedJWTAlgorithms are the asymmetric algorithms an issuer may list.
var allowedJWTAlgorithms = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true,
}

// Auth turns on client authentication. When Config.Auth is nil the gateway
// is open: every request passes without credentials, as before auth existed.
// When it is set, every request (GET /v1/models included) needs an API key or
// a JWT from a configured issuer, and is tied to one tenant.
type Auth struct {
	// TenantHeader is the request header the verified tenant name is sent
	// upstream in (default x-streamgate-tenant). A client-sent value is
	// always replaced.
	TenantHeader string `yaml:"tenant_header"`
	// Tenants are the known tenants, their API keys and their policy.
	Tenants []Tenant `yaml:"tenants"`
	// JWT lists the token issuers trusted besides API keys.
	JWT []Issuer `yaml:"jwt"`
}

// Tenant is one client organisation: its credentials and what it may use.
type Tenant struct {
	// Name is unique; it is what limits, metrics and the tenant header see.
	Name string `yaml:"name"`
	// Models are public model names or path.Match globs ("gpt-*", "*") the
	// tenant may use. Required unless the tenant uses services only: an
	// empty list allows no model.
	Models []string `yaml:"models"`
	// Endpoints are API paths or globs ("/v1/chat/completions", "/v1/*");
	// empty allows every endpoint.
	Endpoints []string `yaml:"endpoints"`
	// MaxTokens caps the output a request may ask for: max_tokens (and
	// max_completion_tokens) times n; larger asks are refused with 400 and
	// a completion request without one gets max_tokens set to cap/n. 0
	// means no cap.
	MaxTokens int64 `yaml:"max_tokens"`
	// PinVersions lets the tenant choose a model version with the
	// x-streamgate-model-version header, on models that allow pinning.
	// Off by default: tenants get the weighted split.
	PinVersions bool `yaml:"pin_versions"`
	// Priority is the tenant's requests' priority while a backend with
	// picking is saturated: critical, standard (default) or sheddable
	// (docs/picking.md "Saturation and priority").
	Priority string `yaml:"priority"`
	// PriorityHeader lets the tenant set a request's priority with the
	// x-streamgate-priority header (default false: the header is stripped
	// and ignored).
	PriorityHeader bool `yaml:"priority_header"`
	// Services grant the tenant operations of services (service.go); a
	// service not listed is refused (403).
	Services []TenantService `yaml:"services"`
	// APIKeys are the tenant's keys, stored as hashes only.
	APIKeys []APIKey `yaml:"api_keys"`
	// ClientCertificates tie clients to the tenant by their verified TLS
	// certificate (gateway.tls.client_ca_file): a request with no API key
	// or JWT whose certificate matches an entry is the tenant's. A
	// certificate must match one tenant only.
	ClientCertificates []ClientCertificate `yaml:"client_certificates"`
}

// APIKey is one stored API key. The plain key is never in the config:
// `streamgate hash-key` prints the hash to store.
type APIKey struct {
	// Name labels the key in logs (optional; never the key itself).
	Name string `yaml:"name"`
	// Hash is "sha256:" followed by the key's SHA-256 in 64 hex digits.
	Hash string `yaml:"hash"`
	// Expires, when set, is the instant the key stops working.
	Expires *time.Time `yaml:"expires"`
	// Disabled refuses the key without deleting it.
	Disabled bool `yaml:"disabled"`
}

// Issuer is one trusted JWT/OIDC issuer.
type Issuer struct {
	// Issuer must equal the token's "iss" claim exactly.
	Issuer string `yaml:"issuer"`
	// JWKSURL serves the issuer's public keys (https, or http on loopback).
	JWKSURL string `yaml:"jwks_url"`
	// Audiences: the token's "aud" must contain one of them. Required.
	Audiences []string `yaml:"audiences"`
	// Algorithms allowed (default [RS256, ES256, EdDSA]); HMAC and none are refused.
	Algorithms []string `yaml:"algorithms"`
	// ClockSkew is the leeway for exp/nbf/iat (default 30s).
	ClockSkew time.Duration `yaml:"clock_skew"`
	// TenantClaim names the claim holding the tenant (default "sub"). A
	// claim name with dots that is not present as such is read as a path
	// into nested objects ("org.id"). A string array claim (groups) maps to
	// its first element that names a configured tenant.
	TenantClaim string `yaml:"tenant_claim"`
	// DefaultTenant, when set, is the configured tenant whose name and
	// policy a valid token gets when its claim names no configured tenant.
	// Empty means such tokens are refused with 403.
	DefaultTenant string `yaml:"default_tenant"`
	// RefreshInterval is how often the JWKS is re-fetched (default 1h).
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// MinRefreshInterval rate-limits the re-fetch a token with an unknown
	// key id triggers (default 1m).
	MinRefreshInterval time.Duration `yaml:"min_refresh_interval"`
}

// Credential is the secret the gateway sends to a backend, read from an
// environment variable or a file when the ext_proc server starts or applies
// a reload (not by Load; `validate` checks it with CheckSources).
type Credential struct {
	// Header is "authorization" (sent as "Bearer SECRET"), "x-api-key",
	// "api-key" (Azure OpenAI) or "x-goog-api-key" (Gemini API).
	Header string `yaml:"header"`
	// Env names the environment variable holding the secret.
	Env string `yaml:"env"`
	// File is a file holding the secret (surrounding whitespace is trimmed).
	File string `yaml:"file"`
}

// Tenant returns the tenant with the given name, or nil.
func (a *Auth) Tenant(name string) *Tenant {
	for i := range a.Tenants {
		if a.Tenants[i].Name == name {
			return &a.Tenants[i]
		}
	}
	return nil
}

func (a *Auth) applyDefaults() {
	setString(&a.TenantHeader, DefaultTenantHeader)
	for i := range a.Tenants {
		setString(&a.Tenants[i].Priority, PriorityStandard)
	}
	for i := range a.JWT {
		is := &a.JWT[i]
		setString(&is.TenantClaim, DefaultTenantClaim)
		if len(is.Algorithms) == 0 {
			is.Algorithms = append([]string(nil), DefaultJWTAlgorithms...)
		}
		if is.ClockSkew == 0 {
			is.ClockSkew = DefaultClockSkew
		}
		if is.RefreshInterval == 0 {
			is.RefreshInterval = DefaultJWKSRefreshInterval
		}
		if is.MinRefreshInterval == 0 {
			is.MinRefreshInterval = DefaultJWKSMinRefreshBetween
		}
	}
}

func (v *validator) validateAuth(a *Auth) {
	if a == nil {
		return
	}
	h := strings.ToLower(a.TenantHeader)
	if h != a.TenantHeader || !validHeaderName(h) {
		v.at("$.auth.tenant_header", "tenant_header %q must be a lower-case HTTP header name", a.TenantHeader)
	}
	switch h {
	case "authorization", "x-api-key", contract.BackendHeader, "host", "content-length", "content-type":
		v.at("$.auth.tenant_header", "tenant_header %q is a header the gateway already uses; pick another, e.g. %s", a.TenantHeader, DefaultTenantHeader)
	}
	if len(a.Tenants) == 0 && len(a.JWT) == 0 {
		v.at("$.auth", "auth has no tenants and no jwt issuers: nobody could use the gateway")
	}
	names := map[string]int{}
	hashes := map[string]string{}
	for i, t := range a.Tenants {
		p := fmt.Sprintf("$.auth.tenants[%d]", i)
		if t.Name == "" {
			v.at(p, "tenant %d has no name", i+1)
		} else if !validName(t.Name) {
			v.at(p+".name", "tenant name %q may hold only letters, digits, '-', '_' and '.'", t.Name)
		}
		if j, dup := names[t.Name]; dup && t.Name != "" {
			v.at(p+".name", "tenant name %q is already used by tenant %d", t.Name, j+1)
		}
		names[t.Name] = i
		v.validateTenantServices(p, &a.Tenants[i])
		if len(t.Models) == 0 && len(t.Services) == 0 {
			v.at(p, "tenant %q allows no models; list model names or globs under models (\"*\" allows all)", t.Name)
		}
		for k, m := range t.Models {
			if _, err := path.Match(m, ""); err != nil || m == "" {
				v.at(fmt.Sprintf("%s.models[%d]", p, k), "tenant %q: %q is not a valid model name or glob", t.Name, m)
			}
		}
		for k, e := range t.Endpoints {
			if _, err := path.Match(e, ""); err != nil || !strings.HasPrefix(e, "/") {
				v.at(fmt.Sprintf("%s.endpoints[%d]", p, k), "tenant %q: endpoint %q must be a path or glob starting with '/', e.g. /v1/chat/completions", t.Name, e)
			}
		}
		if t.MaxTokens < 0 {
			v.at(p+".max_tokens", "tenant %q: max_tokens must be 0 (no cap) or positive", t.Name)
		}
		v.validatePriority(p, &a.Tenants[i])
		v.clientCertificates(p, t)
		for k, key := range t.APIKeys {
			kp := fmt.Sprintf("%s.api_keys[%d]", p, k)
			if !validKeyHash(key.Hash) {
				v.at(kp+".hash", "tenant %q: API key %d: hash must be %s followed by 64 hex digits; run `streamgate hash-key` to make one", t.Name, k+1, KeyHashPrefix)
				continue
			}
			norm := strings.ToLower(key.Hash)
			if other, dup := hashes[norm]; dup {
				v.at(kp+".hash", "tenant %q: API key %d has the same hash as a key of tenant %q", t.Name, k+1, other)
			}
			hashes[norm] = t.Name
		}
	}
	issuers := map[string]bool{}
	for i, is := range a.JWT {
		v.validateIssuer(fmt.Sprintf("$.auth.jwt[%d]", i), &is, a)
		if issuers[is.Issuer] && is.Issuer != "" {
			v.at(fmt.Sprintf("$.auth.jwt[%d].issuer", i), "issuer %q is listed twice", is.Issuer)
		}
		issuers[is.Issuer] = true
	}
}

func (v *validator) validateIssuer(p string, is *Issuer, a *Auth) {
	if is.Issuer == "" {
		v.at(p, "a jwt issuer has no issuer (the exact \"iss\" claim value)")
	}
	u, err := url.Parse(is.JWKSURL)
	switch {
	case is.JWKSURL == "":
		v.at(p, "issuer %q has no jwks_url", is.Issuer)
	case err != nil || u.Host == "":
		v.at(p+".jwks_url", "issuer %q: jwks_url %q is not a valid URL", is.Issuer, is.JWKSURL)
	case u.Scheme != "https" && !(u.Scheme == "http" && loopbackHost(u.Hostname())):
		v.at(p+".jwks_url", "issuer %q: jwks_url must use https (plain http is allowed only on loopback)", is.Issuer)
	}
	if len(is.Audiences) == 0 {
		v.at(p, "issuer %q lists no audiences; tokens minted for other services would be accepted", is.Issuer)
	}
	for k, alg := range is.Algorithms {
		if !allowedJWTAlgorithms[alg] {
			v.at(fmt.Sprintf("%s.algorithms[%d]", p, k), "issuer %q: algorithm %q is not allowed; use asymmetric ones such as RS256, ES256 or EdDSA (HMAC and none are refused)", is.Issuer, alg)
		}
	}
	if is.ClockSkew < 0 || is.ClockSkew > 10*time.Minute {
		v.at(p+".clock_skew", "issuer %q: clock_skew must be between 0 and 10m", is.Issuer)
	}
	if is.DefaultTenant != "" && a.Tenant(is.DefaultTenant) == nil {
		v.at(p+".default_tenant", "issuer %q: default_tenant %q is not defined under auth.tenants", is.Issuer, is.DefaultTenant)
	}
	if is.MinRefreshInterval < 0 || is.RefreshInterval < 0 {
		v.at(p, "issuer %q: refresh intervals must be positive", is.Issuer)
	}
}

func (v *validator) validateCredential(p string, b *Backend) {
	c := b.Credential
	if c == nil {
		return
	}
	if c.Header != "authorization" && c.Header != "x-api-key" && c.Header != "api-key" && c.Header != GeminiKeyHeader {
		v.at(p+".credential.header", "backend %q: credential header %q must be authorization, x-api-key, api-key (Azure OpenAI) or x-goog-api-key (Gemini API)", b.Name, c.Header)
	}
	if (c.Env == "") == (c.File == "") {
		v.at(p+".credential", "backend %q: credential needs exactly one of env or file", b.Name)
	}
}

func validKeyHash(s string) bool {
	hexPart, ok := strings.CutPrefix(strings.ToLower(s), KeyHashPrefix)
	if !ok || len(hexPart) != 64 {
		return false
	}
	_, err := hex.DecodeString(hexPart)
	return err == nil
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		ok := r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

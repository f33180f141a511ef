package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/streamgate/streamgate/config"
)

// issuer verifies the tokens of one configured OIDC issuer with the keys of
// its own JWKS only.
type issuer struct {
	name          string
	algs          []string
	keys          keyfunc.Keyfunc
	validator     *jwt.Validator
	claim         string
	defaultTenant *Tenant
}

// parser decodes tokens for every issuer. Only asymmetric algorithms pass it;
// each issuer narrows them further. Claims are validated per issuer.
var parser = jwt.NewParser(
	jwt.WithValidMethods([]string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}),
	jwt.WithoutClaimsValidation(),
)

func newIssuer(ctx context.Context, ic config.Issuer, a *Authenticator, opts Options) (*issuer, error) {
	log := opts.Log
	name := ic.Issuer
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{ic.JWKSURL}, keyfunc.Override{
		Client:            opts.HTTPClient,
		HTTPTimeout:       opts.HTTPClient.Timeout,
		RefreshInterval:   ic.RefreshInterval,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(ic.MinRefreshInterval), 1),
		RefreshErrorHandlerFunc: func(string) func(context.Context, error) {
			return func(_ context.Context, err error) {
				log.Warn("cannot refresh JWKS", "issuer", name, "error", err.Error())
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("cannot set up JWKS of issuer %q: %w", name, err)
	}
	return &issuer{
		name: name,
		algs: ic.Algorithms,
		keys: kf,
		validator: jwt.NewValidator(
			jwt.WithIssuer(name),
			jwt.WithAudience(ic.Audiences...),
			jwt.WithLeeway(ic.ClockSkew),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(a.now),
		),
		claim:         ic.TenantClaim,
		defaultTenant: a.tenants[ic.DefaultTenant],
	}, nil
}

// verifyJWT answers a token that verified within the last minute (and has
// not expired) from the cache; otherwise it checks the token's signature
// with its issuer's keys, then the issuer's claim rules, then maps it to a
// tenant.
// sum is the SHA-256 of token.
func (a *Authenticator) verifyJWT(ctx context.Context, token string, sum [sha256.Size]byte) (*Tenant, error) {
	now := a.now()
	if t := a.verified.get(sum, now); t != nil {
		return t, nil
	}
	ctx, cancel := context.WithTimeout(ctx, verifyTimeout)
	defer cancel()
	claims := jwt.MapClaims{}
	var is *issuer
	_, err := parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		iss, _ := claims.GetIssuer()
		is = a.issuers[iss]
		if is == nil {
			return nil, errUnknownIssuer
		}
		if !slices.Contains(is.algs, t.Method.Alg()) {
			return nil, fmt.Errorf("%w: %s", errAlgorithm, t.Method.Alg())
		}
		// RFC 7515 4.1.11: a recipient must refuse a token naming a
		// critical extension it does not understand. We understand none.
		if _, ok := t.Header["crit"]; ok {
			return nil, errCritical
		}
		return is.keys.KeyfuncCtx(ctx)(t)
	})
	if err == nil {
		err = is.validator.Validate(claims)
	}
	if err != nil {
		public := "The token is invalid."
		if errors.Is(err, jwt.ErrTokenExpired) {
			public = "The token has expired."
		}
		issName := "unknown"
		if is != nil {
			issName = is.name
		}
		return nil, unauthenticated(public, fmt.Sprintf("JWT from issuer %q refused: %v", issName, err))
	}
	t, err := is.tenantFor(claims, a.tenants)
	if err != nil {
		return nil, err
	}
	if exp, _ := claims.GetExpirationTime(); exp != nil { // required by the validator
		a.verified.put(sum, t, exp.Time, now)
	}
	return t, nil
}

var (
	errUnknownIssuer = errors.New("issuer is not configured")
	errAlgorithm     = errors.New("algorithm not allowed for this issuer")
	errCritical      = errors.New("token names critical header extensions (crit), which are not supported")
)

// tenantFor maps a verified token's claim to a configured tenant, falling
// back to the issuer's default tenant; otherwise the token is forbidden.
func (is *issuer) tenantFor(claims jwt.MapClaims, tenants map[string]*Tenant) (*Tenant, error) {
	for _, v := range claimValues(claims, is.claim) {
		if t := tenants[v]; t != nil {
			return t, nil
		}
	}
	if is.defaultTenant != nil {
		return is.defaultTenant, nil
	}
	return nil, forbidden("Your token is valid but is not tied to a tenant of this gateway.",
		fmt.Sprintf("JWT from issuer %q: claim %q names no configured tenant", is.name, is.claim))
}

// claimValues returns the string values of a claim: the claim itself, or a
// dotted path into nested objects; a string array yields every string.
func claimValues(claims map[string]any, name string) []string {
	v, ok := claims[name]
	if !ok && strings.Contains(name, ".") {
		var cur any = claims
		for part := range strings.SplitSeq(name, ".") {
			m, isMap := cur.(map[string]any)
			if !isMap {
				return nil
			}
			cur = m[part]
		}
		v = cur
	}
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

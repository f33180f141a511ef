package auth

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc/auth/authtest"
)

// now is the fixed clock of these tests.
var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

const baseConfig = `backends:
  - name: b
    protocol: openai
    endpoints: [127.0.0.1:1]
models:
  - name: m
    backend: b
`

func fixedNow() time.Time { return now }

func configParse(src string) (*config.Config, error) { return config.Parse("test.yaml", []byte(src)) }

func newAuth(t *testing.T, authYAML string) *Authenticator {
	t.Helper()
	cfg, err := configParse(baseConfig + authYAML)
	require.NoError(t, err)
	a, err := New(t.Context(), cfg, Options{Now: fixedNow})
	require.NoError(t, err)
	return a
}

func TestAPIKeys(t *testing.T) {
	a := newAuth(t, fmt.Sprintf(`auth:
  tenants:
    - name: acme
      models: ["*"]
      api_keys:
        - {name: live, hash: %s}
        - {name: old, hash: %s, expires: 2026-06-01T12:00:00Z}
        - {name: later, hash: %s, expires: 2026-06-01T12:00:01Z}
        - {name: off, hash: %s, disabled: true}
        - {name: dotted, hash: %s}
    - name: beta
      models: [m]
      api_keys:
        - {hash: "%s"}
`, HashKey("sk-live"), HashKey("sk-old"), HashKey("sk-later"), HashKey("sk-off"), HashKey("a.b.c"), HashKey("sk-beta")))
	require.True(t, a.Required())
	for name, tc := range map[string]struct {
		key, tenant, public string
	}{
		"valid key":              {key: "sk-live", tenant: "acme"},
		"other tenant":           {key: "sk-beta", tenant: "beta"},
		"not yet expired":        {key: "sk-later", tenant: "acme"},
		"expired at the second":  {key: "sk-old", public: "expired"},
		"disabled":               {key: "sk-off", public: "Incorrect"},
		"unknown":                {key: "sk-nope", public: "Incorrect"},
		"prefix of a valid key":  {key: "sk-liv", public: "Incorrect"},
		"jwt-shaped unknown key": {key: "x.y.z", public: "Incorrect"},
		"jwt-shaped key":         {key: "a.b.c", tenant: "acme"},
	} {
		t.Run(name, func(t *testing.T) {
			tn, err := a.Authenticate(t.Context(), tc.key)
			if tc.tenant != "" {
				require.NoError(t, err)
				assert.Equal(t, tc.tenant, tn.Name)
				return
			}
			require.ErrorIs(t, err, ErrUnauthenticated)
			var ae *Error
			require.ErrorAs(t, err, &ae)
			assert.Contains(t, ae.Public, tc.public)
			assert.NotContains(t, ae.Detail, tc.key, "detail must not hold the key")
		})
	}
}

func TestOpenGatewayRequiresNothing(t *testing.T) {
	a := newAuth(t, "")
	assert.False(t, a.Required())
	var nilAuth *Authenticator
	assert.False(t, nilAuth.Required())
	_, ok := nilAuth.Upstream("b")
	assert.False(t, ok)
}

func TestUpstreamCredentials(t *testing.T) {
	t.Setenv("SG_TEST_UPSTREAM", "env-secret")
	file := t.TempDir() + "/key"
	require.NoError(t, writeFile(file, "file-secret\n"))
	cfg, err := config.Parse("t.yaml", []byte(fmt.Sprintf(`backends:
  - name: a
    protocol: openai
    endpoints: [127.0.0.1:1]
    credential: {header: authorization, env: SG_TEST_UPSTREAM}
  - name: b
    protocol: openai
    endpoints: [127.0.0.1:2]
    credential: {header: x-api-key, file: %s}
  - name: c
    protocol: openai
    endpoints: [127.0.0.1:3]
`, file)))
	require.NoError(t, err)
	a, err := New(t.Context(), cfg, Options{})
	require.NoError(t, err)
	h, ok := a.Upstream("a")
	require.True(t, ok)
	assert.Equal(t, UpstreamHeader{Name: "authorization", Value: "Bearer env-secret"}, h)
	h, ok = a.Upstream("b")
	require.True(t, ok)
	assert.Equal(t, UpstreamHeader{Name: "x-api-key", Value: "file-secret"}, h)
	_, ok = a.Upstream("c")
	assert.False(t, ok)

	t.Setenv("SG_TEST_UPSTREAM", "")
	_, err = New(t.Context(), cfg, Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "SG_TEST_UPSTREAM")
	t.Setenv("SG_TEST_UPSTREAM", "two\nlines")
	_, err = New(t.Context(), cfg, Options{})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "two")
}

// jwtConfig trusts idp as issuer "https://idp.test" for audience "streamgate".
func jwtConfig(idp *authtest.IdP, extra string) string {
	return fmt.Sprintf(`auth:
  tenants:
    - {name: acme, models: ["*"]}
    - {name: guests, models: [m]}
  jwt:
    - issuer: https://idp.test
      jwks_url: %s
      audiences: [streamgate, other-aud]
      clock_skew: 30s
      tenant_claim: org
%s`, idp.JWKSURL(), extra)
}

func claims(mod func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"iss": "https://idp.test", "aud": "streamgate", "org": "acme", "sub": "user-1",
		"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func TestJWT(t *testing.T) {
	idp := authtest.NewIdP(t)
	idp.AddKey(t, "rsa", "RS256")
	idp.AddKey(t, "ec", "ES256")
	idp.AddKey(t, "ed", "EdDSA")
	a := newAuth(t, jwtConfig(idp, ""))

	rsaPub := idp.Public("rsa")
	hsConfusion := func() string {
		// An attacker signs HS256 with the issuer's public key as the secret.
		der := fmt.Sprint(rsaPub)
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil))
		tok.Header["kid"] = "rsa"
		s, err := tok.SignedString([]byte(der))
		require.NoError(t, err)
		return s
	}
	none := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil))
		tok.Header["kid"] = "rsa"
		s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		require.NoError(t, err)
		return s
	}
	tamper := func() string {
		s := idp.Sign(t, "rsa", claims(nil))
		// Flip a byte inside the signature (not the last one, whose low bits may be padding).
		b := []byte(s)
		i := len(b) - 10
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	forged := func() string {
		// Valid signature over claims naming another tenant, payload swapped in.
		good := idp.Sign(t, "rsa", claims(nil))
		other := idp.Sign(t, "rsa", claims(func(c jwt.MapClaims) { c["org"] = "guests" }))
		gp, op := splitJWT(good), splitJWT(other)
		return gp[0] + "." + op[1] + "." + gp[2]
	}

	for name, tc := range map[string]struct {
		token  string
		tenant string
		err    error
		public string
	}{
		"RS256":                     {token: idp.Sign(t, "rsa", claims(nil)), tenant: "acme"},
		"ES256":                     {token: idp.Sign(t, "ec", claims(nil)), tenant: "acme"},
		"EdDSA":                     {token: idp.Sign(t, "ed", claims(nil)), tenant: "acme"},
		"second audience":           {token: idp.Sign(t, "rsa", claims(func(c jwt.MapClaims) { c["aud"] = []string{"x", "other-aud"} })), tenant: "acme"},
		"expired within skew":       {token: idp.Sign(t, "rsa", claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-20 * time.Second).Unix() })), tenant: "acme"},
		"groups array claim":        {token: idp.Sign(t, "rsa", claims(func(c jwt.MapClaims) { c["org"] = []string{"nobody", "guests"} })), tenant: "guests"},
		"wrong audience":            {token: idp.Sign(t, "rsa", claims(func(c jwt.MapClaims) { c["aud"] = "someone-else" })), err: ErrUnauthenticated, public: "invalid"},
		"no audience":               {token: idp.Sign(t, "rsa", claims(func(c jwt.MapClaims) { delete(c, "aud") })), err: ErrUnauthenticated, public: "invalid"},
		"wrong issuer":              {token: idp.Sign(t, "rsa", claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.test" })), err: ErrUnauthenticated, public: "invalid"},
		"expired":                   {token: idp.Sign(t, "rsa", claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() })), err: ErrUnauthenticated, public: "expired"},
		"no expiry":                 {token: idp.Sign(t, "rsa", claims(func(c jwt.MapClaims) { delete(c, "exp") })), err: ErrUnauthenticated, public: "invalid"},
		"not yet valid":             {token: idp.Sign(t, "rsa", claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() })), err: ErrUnauthenticated, public: "invalid"},
		"issued in the future":      {token: idp.Sign(t, "rsa", claims(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() })), err: ErrUnauthenticated, public: "invalid"},
		"alg none":                  {token: none(), err: ErrUnauthenticated, public: "invalid"},
		"HS256 with the public key": {token: hsConfusion(), err: ErrUnauthenticated, public: "invalid"},
		"tampered signature":        {token: tamper(), err: ErrUnauthenticated, public: "invalid"},
		"payload swapped":           {token: forged(), err: ErrUnauthenticated, public: "invalid"},
		"garbage with two dots":     {token: "not.a.jwt", err: ErrUnauthenticated, public: "invalid"},
		"unknown tenant":            {token: idp.Sign(t, "rsa", claims(func(c jwt.MapClaims) { c["org"] = "stranger" })), err: ErrForbidden, public: "not tied to a tenant"},
		"missing tenant claim":      {token: idp.Sign(t, "rsa", claims(func(c jwt.MapClaims) { delete(c, "org") })), err: ErrForbidden},
		// Issue 23 finding 11(d): an unknown critical extension is refused (RFC 7515 4.1.11).
		"unknown crit extension": {token: idp.SignWithHeader(t, "rsa", claims(nil), map[string]any{"crit": []string{"exp-policy"}, "exp-policy": "x"}), err: ErrUnauthenticated, public: "invalid"},
		"empty crit":             {token: idp.SignWithHeader(t, "rsa", claims(nil), map[string]any{"crit": []string{}}), err: ErrUnauthenticated, public: "invalid"},
	} {
		t.Run(name, func(t *testing.T) {
			tn, err := a.Authenticate(t.Context(), tc.token)
			if tc.err == nil {
				require.NoError(t, err)
				assert.Equal(t, tc.tenant, tn.Name)
				return
			}
			require.ErrorIs(t, err, tc.err)
			var ae *Error
			require.ErrorAs(t, err, &ae)
			assert.Contains(t, ae.Public, tc.public)
			t.Logf("refused: %s", ae.Detail)
			assert.NotContains(t, ae.Detail, tc.token)
			assert.NotContains(t, ae.Public, tc.token)
		})
	}
}

func splitJWT(s string) [3]string {
	var out [3]string
	i, j := 0, 0
	for k := 0; k < len(s) && j < 2; k++ {
		if s[k] == '.' {
			out[j] = s[i:k]
			i, j = k+1, j+1
		}
	}
	out[2] = s[i:]
	return out
}

func TestJWTIssuerOptions(t *testing.T) {
	idp := authtest.NewIdP(t)
	idp.AddKey(t, "rsa", "RS256")
	idp.AddKey(t, "ec", "ES256")
	a := newAuth(t, fmt.Sprintf(`auth:
  tenants:
    - name: acme
      models: ["*"]
      api_keys: [{hash: %s}]
    - {name: sso, models: [m]}
  jwt:
    - issuer: https://idp.test
      jwks_url: %s
      audiences: [streamgate]
      algorithms: [ES256]
      tenant_claim: org.id
      default_tenant: sso
`, HashKey("key.with.dots"), idp.JWKSURL()))
	tn, err := a.Authenticate(t.Context(), "key.with.dots")
	require.NoError(t, err, "a configured key wins over the JWT shape")
	assert.Equal(t, "acme", tn.Name)

	nested := claims(func(c jwt.MapClaims) { c["org"] = map[string]any{"id": "acme"} })
	tn, err = a.Authenticate(t.Context(), idp.Sign(t, "ec", nested))
	require.NoError(t, err)
	assert.Equal(t, "acme", tn.Name, "dotted claim path reads nested objects")

	tn, err = a.Authenticate(t.Context(), idp.Sign(t, "ec", claims(func(c jwt.MapClaims) { c["org"] = "stranger" })))
	require.NoError(t, err)
	assert.Equal(t, "sso", tn.Name, "unknown tenant falls back to the default tenant")

	_, err = a.Authenticate(t.Context(), idp.Sign(t, "rsa", nested))
	require.ErrorIs(t, err, ErrUnauthenticated, "RS256 is not in this issuer's algorithms")
}

func TestJWKSRotation(t *testing.T) {
	idp := authtest.NewIdP(t)
	idp.AddKey(t, "k1", "RS256")
	cfg, err := configParse(baseConfig + jwtConfig(idp, "      min_refresh_interval: 1h\n"))
	require.NoError(t, err)
	clock := now
	a, err := New(t.Context(), cfg, Options{Now: func() time.Time { return clock }})
	require.NoError(t, err)
	_, err = a.Authenticate(t.Context(), idp.Sign(t, "k1", claims(nil)))
	require.NoError(t, err)
	fetches := idp.Fetches()

	// The issuer rotates: k2 is published, k1 withdrawn. The first token
	// with the unknown kid triggers one JWKS fetch and is accepted.
	idp.AddKey(t, "k2", "ES256")
	idp.RemoveKey("k1")
	_, err = a.Authenticate(t.Context(), idp.Sign(t, "k2", claims(nil)))
	require.NoError(t, err, "rotation is picked up without restart")
	assert.Equal(t, fetches+1, idp.Fetches())
	_, err = a.Authenticate(t.Context(), idp.Sign(t, "k1", claims(nil)))
	require.NoError(t, err, "a token verified before is served from the cache for up to a minute")
	clock = clock.Add(tokenCacheTTL)
	_, err = a.Authenticate(t.Context(), idp.Sign(t, "k1", claims(nil)))
	require.ErrorIs(t, err, ErrUnauthenticated, "withdrawn key no longer verifies once the cache entry is stale")

	// Another unknown kid within min_refresh_interval fetches nothing and
	// fails at once instead of waiting for the rate limiter.
	idp.AddKey(t, "k3", "RS256")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err = a.Authenticate(ctx, idp.Sign(t, "k3", claims(nil)))
	require.ErrorIs(t, err, ErrUnauthenticated)
	require.NoError(t, ctx.Err(), "refused without waiting out the limiter")
	assert.Equal(t, fetches+1, idp.Fetches(), "rate-limited: no second fetch")
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

func TestTokenCacheHonoursExpiry(t *testing.T) {
	idp := authtest.NewIdP(t)
	idp.AddKey(t, "k", "EdDSA")
	cfg, err := configParse(baseConfig + strings.Replace(jwtConfig(idp, ""), "clock_skew: 30s", "clock_skew: 1s", 1))
	require.NoError(t, err)
	clock := now
	a, err := New(t.Context(), cfg, Options{Now: func() time.Time { return clock }})
	require.NoError(t, err)
	tok := idp.Sign(t, "k", claims(func(c jwt.MapClaims) { c["exp"] = now.Add(10 * time.Second).Unix() }))
	_, err = a.Authenticate(t.Context(), tok)
	require.NoError(t, err)
	fetches := idp.Fetches()
	clock = now.Add(9 * time.Second)
	_, err = a.Authenticate(t.Context(), tok)
	require.NoError(t, err)
	clock = now.Add(11 * time.Second)
	_, err = a.Authenticate(t.Context(), tok)
	require.ErrorIs(t, err, ErrUnauthenticated, "a cached token still expires (exp + skew)")
	assert.Equal(t, fetches, idp.Fetches())
}

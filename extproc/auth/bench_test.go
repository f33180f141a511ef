package auth

import (
	"fmt"
	"testing"

	"github.com/streamgate/streamgate/extproc/auth/authtest"
)

// BenchmarkAuthenticateKey is the per-request cost of an API key: parse the
// header, hash the key, look it up.
func BenchmarkAuthenticateKey(b *testing.B) {
	a := newAuthB(b, fmt.Sprintf("auth:\n  tenants:\n    - name: t\n      models: [\"*\"]\n      api_keys: [{hash: %s}]\n", HashKey("sk-bench-0123456789abcdef")))
	authz := []string{"Bearer sk-bench-0123456789abcdef"}
	b.ReportAllocs()
	for b.Loop() {
		cred, err := ParseCredential(authz, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.Authenticate(b.Context(), cred); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticateJWT is the per-request cost of a JWT: "verified" is a
// token not seen in the last minute (decode, one signature check with the
// cached JWKS key, claim checks, tenant mapping), "cached" one seen before.
func BenchmarkAuthenticateJWT(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			idp := authtest.NewIdP(b)
			idp.AddKey(b, "k", alg)
			a := newAuthB(b, jwtConfig(idp, ""))
			tok := idp.Sign(b, "k", claims(nil))
			b.Run("cached", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := a.Authenticate(b.Context(), tok); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("verified", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					a.verified = tokenCache{}
					if _, err := a.Authenticate(b.Context(), tok); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

func newAuthB(b *testing.B, authYAML string) *Authenticator {
	b.Helper()
	cfg, err := configParse(baseConfig + authYAML)
	if err != nil {
		b.Fatal(err)
	}
	a, err := New(b.Context(), cfg, Options{Now: fixedNow})
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// Package authtest is a fake OIDC issuer for tests: it serves a JWKS over
// HTTP on loopback and signs tokens with its keys. Keys can be added and
// removed while it runs, to test key rotation.
package authtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// IdP is a fake issuer. Its methods are safe for concurrent use.
type IdP struct {
	srv     *httptest.Server
	mu      sync.Mutex
	keys    map[string]signingKey // kid -> key
	order   []string
	fetches atomic.Int64
}

type signingKey struct {
	alg  jwt.SigningMethod
	priv crypto.Signer
}

// NewIdP starts a fake issuer that stops when the test ends.
func NewIdP(t testing.TB) *IdP {
	t.Helper()
	idp := &IdP{keys: map[string]signingKey{}}
	idp.srv = httptest.NewServer(http.HandlerFunc(idp.serveJWKS))
	t.Cleanup(idp.srv.Close)
	return idp
}

// JWKSURL is where the issuer serves its public keys.
func (i *IdP) JWKSURL() string { return i.srv.URL + "/jwks.json" }

// Fetches counts the JWKS documents served so far.
func (i *IdP) Fetches() int64 { return i.fetches.Load() }

// AddKey makes a new key for alg (RS256, ES256 or EdDSA) under kid and
// publishes it.
func (i *IdP) AddKey(t testing.TB, kid, alg string) {
	t.Helper()
	var k signingKey
	var err error
	switch alg {
	case "RS256":
		var p *rsa.PrivateKey
		p, err = rsa.GenerateKey(rand.Reader, 2048)
		k = signingKey{alg: jwt.SigningMethodRS256, priv: p}
	case "ES256":
		var p *ecdsa.PrivateKey
		p, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		k = signingKey{alg: jwt.SigningMethodES256, priv: p}
	case "EdDSA":
		var p ed25519.PrivateKey
		_, p, err = ed25519.GenerateKey(rand.Reader)
		k = signingKey{alg: jwt.SigningMethodEdDSA, priv: p}
	default:
		t.Fatalf("authtest: unsupported alg %s", alg)
	}
	if err != nil {
		t.Fatalf("authtest: cannot generate key: %v", err)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys[kid] = k
	i.order = append(i.order, kid)
}

// RemoveKey stops publishing kid (tokens signed with it stay signable).
func (i *IdP) RemoveKey(kid string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for n, k := range i.order {
		if k == kid {
			i.order = append(i.order[:n], i.order[n+1:]...)
			return
		}
	}
}

// Public returns the public key of kid.
func (i *IdP) Public(kid string) crypto.PublicKey {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.keys[kid].priv.Public()
}

// Sign returns a compact JWS of claims signed with kid's key, with kid in
// the header.
func (i *IdP) Sign(t testing.TB, kid string, claims jwt.MapClaims) string {
	t.Helper()
	return i.SignWithHeader(t, kid, claims, nil)
}

// SignWithHeader is Sign with extra JOSE header fields (e.g. "crit").
func (i *IdP) SignWithHeader(t testing.TB, kid string, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	i.mu.Lock()
	k, ok := i.keys[kid]
	i.mu.Unlock()
	if !ok {
		t.Fatalf("authtest: no key %q", kid)
	}
	tok := jwt.NewWithClaims(k.alg, claims)
	tok.Header["kid"] = kid
	for name, v := range header {
		tok.Header[name] = v
	}
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatalf("authtest: cannot sign: %v", err)
	}
	return s
}

func (i *IdP) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	i.fetches.Add(1)
	i.mu.Lock()
	set := jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{}}
	for _, kid := range i.order {
		k := i.keys[kid]
		jwk, err := jwkset.NewJWKFromKey(k.priv.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
			KID: kid, ALG: jwkset.ALG(k.alg.Alg()), USE: jwkset.UseSig,
		}})
		if err != nil {
			i.mu.Unlock()
			http.Error(w, fmt.Sprint(err), http.StatusInternalServerError)
			return
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	i.mu.Unlock()
	w.Header().Set("content-type", "application/json")
	_ = json.NewEncoder(w).Encode(set)
}

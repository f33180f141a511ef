package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/streamgate/streamgate/contract"
)

// Client credential headers. Both are removed before a request reaches a
// backend when auth is configured.
const (
	HeaderAuthorization = contract.AuthorizationHeader
	HeaderAPIKey        = contract.APIKeyHeader
)

// MaxCredentialBytes bounds a presented credential; longer ones are refused
// without being hashed or parsed.
const MaxCredentialBytes = 16 << 10

// The errors ParseCredential returns. They are fixed values: no part of a
// presented credential can reach an error text.
var (
	errMissing   = unauthenticated("Missing credentials. Send your API key in an 'Authorization: Bearer KEY' or 'x-api-key: KEY' header.", "no credentials")
	errRepeated  = unauthenticated("Send exactly one credential.", "credential header repeated")
	errConflict  = unauthenticated("Send exactly one credential.", "authorization and x-api-key differ")
	errScheme    = unauthenticated("Use the Bearer scheme: 'Authorization: Bearer KEY'.", "authorization scheme is not Bearer")
	errBadBearer = unauthenticated(invalidCredential, "bearer token is empty, oversized or malformed")
	errBadAPIKey = unauthenticated(invalidCredential, "x-api-key is empty, oversized or holds invalid characters")
)

// IsCredentialHeader reports whether the lower-case header name k carries a
// client credential.
func IsCredentialHeader(k string) bool {
	return k == HeaderAuthorization || k == HeaderAPIKey
}

// ParseCredential returns the one credential a request presents in its
// Authorization (scheme Bearer) and x-api-key headers, each given as every
// value the request carried for that name. A request with neither fails with
// ErrUnauthenticated ("missing"); so does a repeated header, a scheme other
// than Bearer, a malformed or oversized token, or two different credentials.
// The same credential in both headers is accepted. Errors never contain the
// credential.
func ParseCredential(authorization, apiKey []string) (string, error) {
	if len(authorization) == 0 && len(apiKey) == 0 {
		return "", errMissing
	}
	if len(authorization) > 1 || len(apiKey) > 1 {
		return "", errRepeated
	}
	var bearer, key string
	if len(authorization) == 1 {
		b, err := parseBearer(authorization[0])
		if err != nil {
			return "", err
		}
		bearer = b
	}
	if len(apiKey) == 1 {
		key = strings.Trim(apiKey[0], " \t")
		if !visibleASCII(key) {
			return "", errBadAPIKey
		}
	}
	switch {
	case bearer != "" && key != "" && bearer != key:
		return "", errConflict
	case bearer != "":
		return bearer, nil
	default:
		return key, nil
	}
}

// parseBearer reads "Bearer TOKEN" (scheme case-insensitive, RFC 6750
// b64token syntax).
func parseBearer(v string) (string, error) {
	v = strings.Trim(v, " \t")
	scheme, token, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "bearer") {
		return "", errScheme
	}
	token = strings.TrimLeft(token, " ")
	if !b64token(token) {
		return "", errBadBearer
	}
	return token, nil
}

// b64token reports whether s is an RFC 6750 b64token of acceptable length:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func b64token(s string) bool {
	if s == "" || len(s) > MaxCredentialBytes {
		return false
	}
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		ok := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
		if !ok {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

func visibleASCII(s string) bool {
	if s == "" || len(s) > MaxCredentialBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// HashKey returns the form an API key is stored in: "sha256:" followed by
// the lower-case hex SHA-256 of the key's bytes.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// looksLikeJWT reports whether a token has the compact JWS shape
// (three dot-separated parts) and so goes to the JWT verifier.
func looksLikeJWT(token string) bool {
	return strings.Count(token, ".") == 2
}

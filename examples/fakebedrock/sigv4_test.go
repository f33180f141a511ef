package fakebedrock

import (
	"errors"
	"testing"
)

// FuzzParseAuthorization: any Authorization header is parsed or refused
// with an authError, never a panic.
func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKID/20261202/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc")
	f.Add("AWS4-HMAC-SHA256 Credential=/////, SignedHeaders=, Signature=")
	f.Add("Bearer x")
	f.Fuzz(func(t *testing.T, h string) {
		a, err := parseAuthorization(h)
		if err != nil {
			var ae *authError
			if !errors.As(err, &ae) {
				t.Fatalf("not an authError: %v", err)
			}
			return
		}
		if len(a.signedHeaders) == 0 {
			t.Fatal("parsed without signed headers")
		}
	})
}

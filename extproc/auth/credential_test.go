package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseCredential(t *testing.T) {
	for name, tc := range map[string]struct {
		authz, apiKey []string
		want          string
		wantErr       string // substring of the public message; "" means success
	}{
		"bearer":                         {authz: []string{"Bearer sk-abc"}, want: "sk-abc"},
		"bearer scheme any case":         {authz: []string{"bEaReR sk-abc"}, want: "sk-abc"},
		"bearer extra spaces":            {authz: []string{"  Bearer   sk-abc  "}, want: "sk-abc"},
		"bearer with padding":            {authz: []string{"Bearer YWJj=="}, want: "YWJj=="},
		"jwt shape":                      {authz: []string{"Bearer a.b.c"}, want: "a.b.c"},
		"x-api-key":                      {apiKey: []string{"sk-ant-1"}, want: "sk-ant-1"},
		"x-api-key trimmed":              {apiKey: []string{" sk-ant-1\t"}, want: "sk-ant-1"},
		"same key twice":                 {authz: []string{"Bearer k1"}, apiKey: []string{"k1"}, want: "k1"},
		"missing":                        {wantErr: "Missing credentials"},
		"two different":                  {authz: []string{"Bearer k1"}, apiKey: []string{"k2"}, wantErr: "exactly one"},
		"repeated authorization":         {authz: []string{"Bearer k1", "Bearer k1"}, wantErr: "exactly one"},
		"repeated x-api-key":             {apiKey: []string{"k1", "k2"}, wantErr: "exactly one"},
		"basic scheme":                   {authz: []string{"Basic dXNlcjpwYXNz"}, wantErr: "Bearer scheme"},
		"scheme only":                    {authz: []string{"Bearer"}, wantErr: "Incorrect"},
		"empty token":                    {authz: []string{"Bearer "}, wantErr: "Incorrect"},
		"token with space":               {authz: []string{"Bearer a b"}, wantErr: "Incorrect"},
		"token with comma":               {authz: []string{"Bearer a,b"}, wantErr: "Incorrect"},
		"padding in the middle":          {authz: []string{"Bearer a=b"}, wantErr: "Incorrect"},
		"only padding":                   {authz: []string{"Bearer =="}, wantErr: "Incorrect"},
		"control char in x-api-key":      {apiKey: []string{"a\x00b"}, wantErr: "Incorrect"},
		"non-ascii x-api-key":            {apiKey: []string{"clé"}, wantErr: "Incorrect"},
		"empty x-api-key":                {apiKey: []string{""}, wantErr: "Incorrect"},
		"oversized bearer":               {authz: []string{"Bearer " + strings.Repeat("a", MaxCredentialBytes+1)}, wantErr: "Incorrect"},
		"oversized x-api-key":            {apiKey: []string{strings.Repeat("a", MaxCredentialBytes+1)}, wantErr: "Incorrect"},
		"bad bearer beside good api key": {authz: []string{"Bearer a b"}, apiKey: []string{"k"}, wantErr: "Incorrect"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := ParseCredential(tc.authz, tc.apiKey)
			if tc.wantErr == "" {
				require.NoError(t, err)
				assert.Equal(t, tc.want, got)
				return
			}
			require.ErrorIs(t, err, ErrUnauthenticated)
			var ae *Error
			require.ErrorAs(t, err, &ae)
			assert.Contains(t, ae.Public, tc.wantErr)
			assert.Empty(t, got)
		})
	}
}

func TestHashKey(t *testing.T) {
	// printf 'sk-test-123' | sha256sum
	assert.Equal(t, "sha256:e0dbaa0c6455768bf812d8345ec96a2677d1e3bf17dbb0020b115c80092811e6", HashKey("sk-test-123"))
}

// FuzzParseCredential feeds arbitrary header values to the parser: it must
// never panic, return a credential only from the bytes it was given, and
// never build an error text from its input.
func FuzzParseCredential(f *testing.F) {
	f.Add("Bearer sk-abc", "")
	f.Add("", "sk-ant")
	f.Add("bearer a.b.c", "a.b.c")
	f.Add("Basic Zm9vOmJhcg==", "")
	f.Add("Bearer \x00\xff", "\r\n")
	f.Fuzz(func(t *testing.T, authz, apiKey string) {
		var a, k []string
		if authz != "" {
			a = []string{authz}
		}
		if apiKey != "" {
			k = []string{apiKey}
		}
		got, err := ParseCredential(a, k)
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("error of unexpected kind: %v", err)
			}
			// Only the fixed errors may come back, so no input reaches a text.
			switch err {
			case errMissing, errRepeated, errConflict, errScheme, errBadBearer, errBadAPIKey:
			default:
				t.Fatalf("error is not one of the fixed errors: %v", err)
			}
			return
		}
		if got == "" || len(got) > MaxCredentialBytes {
			t.Fatalf("accepted credential of length %d", len(got))
		}
		if !strings.Contains(authz, got) && !strings.Contains(apiKey, got) {
			t.Fatalf("credential %q is not from the input", got)
		}
		for i := 0; i < len(got); i++ {
			if got[i] <= ' ' || got[i] > '~' {
				t.Fatalf("credential holds byte %#x", got[i])
			}
		}
	})
}

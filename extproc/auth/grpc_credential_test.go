package auth

import (
	"encoding/base64"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestGRPCAuthorization(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for name, tc := range map[string]struct {
		in   []string
		want []string
	}{
		"pymilvus token":   {[]string{b64("sk-abc")}, []string{"Bearer sk-abc"}},
		"bearer unchanged": {[]string{"Bearer sk-abc"}, []string{"Bearer sk-abc"}},
		"user:password":    {[]string{b64("root:Milvus")}, []string{b64("root:Milvus")}},
		"not base64":       {[]string{"sk-abc!"}, []string{"sk-abc!"}},
		"two values":       {[]string{b64("a"), b64("b")}, []string{b64("a"), b64("b")}},
		"none":             {nil, nil},
		"empty key":        {[]string{""}, []string{""}},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, GRPCAuthorization(tc.in))
		})
	}
	key, err := ParseCredential(GRPCAuthorization([]string{b64("sk-abc")}), nil)
	assert.NoError(t, err)
	assert.Equal(t, "sk-abc", key)
	_, err = ParseCredential(GRPCAuthorization([]string{b64("root:Milvus")}), nil)
	assert.Error(t, err, "user:password is not an API key")
}

// FuzzGRPCAuthorization: any value maps to one ParseCredential accepts only
// when it was base64 of a b64token or already a Bearer credential, and
// never panics.
func FuzzGRPCAuthorization(f *testing.F) {
	for _, s := range []string{"c2stYWJj", "Bearer sk", "", "====", "cm9vdDpNaWx2dXM=", " c2s= "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		out := GRPCAuthorization([]string{v})
		if len(out) != 1 {
			t.Fatalf("%q became %d values", v, len(out))
		}
		if out[0] != v {
			key, err := ParseCredential(out, nil)
			if err != nil {
				t.Fatalf("%q decoded to a refused credential: %v", v, err)
			}
			if base64.StdEncoding.EncodeToString([]byte(key)) != trimmed(v) {
				t.Fatalf("%q decoded to %q", v, key)
			}
		}
	})
}

func trimmed(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// BenchmarkGRPCAuthorization: the cost a gRPC service call pays for a
// pymilvus-style credential (decoded) and a Bearer one (passed on).
func BenchmarkGRPCAuthorization(b *testing.B) {
	for name, v := range map[string]string{
		"base64": base64.StdEncoding.EncodeToString([]byte("sk-e2e-svc-acme-5b7d9f1a3c")),
		"bearer": "Bearer sk-e2e-svc-acme-5b7d9f1a3c",
	} {
		b.Run(name, func(b *testing.B) {
			in := []string{v}
			b.ReportAllocs()
			for b.Loop() {
				_ = GRPCAuthorization(in)
			}
		})
	}
}

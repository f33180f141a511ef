package extproc

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRewriteModelAtWritesWhatSjsonWrites: the in-place rewrite at the
// span parseRequest found gives the bytes of rewriteModel's search, for
// model names written as is and for those that need escaping.
func TestRewriteModelAtWritesWhatSjsonWrites(t *testing.T) {
	for name, tc := range map[string]struct{ body, model string }{
		"first key":            {`{"model":"a","stream":true}`, "fake-model"},
		"last key, spaces":     {`{"stream":true , "model" :  "a"  }`, "up/model:v2"},
		"nested model too":     {`{"messages":[{"model":"x"}],"model":"a"}`, "b"},
		"escaped value":        {`{"model":"a\u0062c","n":1}`, "plain"},
		"needs escaping":       {`{"model":"a"}`, `quo"te\back`},
		"non-ascii name":       {`{"model":"a"}`, "modèle"},
		"control byte":         {`{"model":"a"}`, "tab\there"},
		"html characters kept": {`{"model":"a"}`, "<a&b>"},
		"empty name":           {`{"model":"a"}`, ""},
	} {
		t.Run(name, func(t *testing.T) {
			body := []byte(tc.body)
			info, err := parseRequest(body, nil)
			require.NoError(t, err)
			want, err := rewriteModel(body, tc.model)
			require.NoError(t, err)
			got, err := rewriteModelAt(body, info.model, tc.model)
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
			require.Equal(t, tc.body, string(body), "the body is not modified")
		})
	}
}

func FuzzRewriteModelAt(f *testing.F) {
	f.Add([]byte(`{"model":"a","stream":true,"messages":[]}`), "fake-model")
	f.Add([]byte(` {"stream":false, "model" : "x\"y" } `), `a"b`)
	f.Add([]byte(`{"model":"\u00e9"}`), "é")
	f.Fuzz(func(t *testing.T, body []byte, model string) {
		info, err := parseRequest(body, nil)
		if err != nil {
			return
		}
		orig := bytes.Clone(body)
		want, werr := rewriteModel(body, model)
		got, gerr := rewriteModelAt(body, info.model, model)
		if (werr == nil) != (gerr == nil) || !bytes.Equal(want, got) {
			t.Fatalf("rewriteModelAt(%q, %q) = %q, %v; rewriteModel = %q, %v", body, model, got, gerr, want, werr)
		}
		if !bytes.Equal(orig, body) {
			t.Fatalf("body modified: %q", body)
		}
	})
}

// BenchmarkRewriteModel is the model rewrite of a make-bench body: "search"
// is sjson's (rewriteModel), "at" the in-place one (rewriteModelAt).
func BenchmarkRewriteModel(b *testing.B) {
	body := e2eBenchBody(1 << 10)
	info, err := parseRequest(body, nil)
	require.NoError(b, err)
	b.Run("search", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = rewriteModel(body, "fake-model")
		}
	})
	b.Run("at", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = rewriteModelAt(body, info.model, "fake-model")
		}
	})
}

package extproc

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestQueryParamsStripped: issue 23 finding 11(c). Query strings no
// longer pass verbatim to backends: only the backend's allowed parameters
// survive.
func TestQueryParamsStripped(t *testing.T) {
	tests := map[string]struct {
		in, want string
		allowed  []string
		changed  bool
	}{
		"no query":              {in: "/v1/chat/completions", want: "/v1/chat/completions"},
		"all removed":           {in: "/v1/chat/completions?debug=1&key=sk-x", want: "/v1/chat/completions", changed: true},
		"empty query":           {in: "/v1/chat/completions?", want: "/v1/chat/completions", changed: true},
		"allowed kept":          {in: "/v1/chat/completions?api-version=2024-10-21", want: "/v1/chat/completions?api-version=2024-10-21", allowed: []string{"api-version"}},
		"allowed among others":  {in: "/v1/chat/completions?x=1&api-version=2&y", want: "/v1/chat/completions?api-version=2", allowed: []string{"api-version"}, changed: true},
		"escaped name no match": {in: "/v1/embeddings?api%2Dversion=2", want: "/v1/embeddings", allowed: []string{"api-version"}, changed: true},
		"repeated allowed":      {in: "/v1/embeddings?a=1&a=2", want: "/v1/embeddings?a=1&a=2", allowed: []string{"a"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, changed := upstreamPath(tc.in, tc.allowed)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.changed, changed)
		})
	}
}

// FuzzUpstreamPath: the rewritten path keeps the path, only allowed
// parameters, each one verbatim from the input.
func FuzzUpstreamPath(f *testing.F) {
	for _, s := range []string{"/v1/chat/completions?api-version=1&x=2", "/a?", "/a?&&=&api-version", "/a?api-version=1?b=2#f"} {
		f.Add(s)
	}
	allowed := []string{"api-version", "b"}
	f.Fuzz(func(t *testing.T, in string) {
		out, changed := upstreamPath(in, allowed)
		path, query, _ := strings.Cut(in, "?")
		if !strings.HasPrefix(out, path) {
			t.Fatalf("path changed: %q -> %q", in, out)
		}
		if !changed && out != in {
			t.Fatalf("unchanged but differs: %q -> %q", in, out)
		}
		_, kept, _ := strings.Cut(out[len(path):], "?")
		if kept == "" {
			return
		}
		parts := strings.Split(query, "&")
		for part := range strings.SplitSeq(kept, "&") {
			name, _, _ := strings.Cut(part, "=")
			if !slices.Contains(allowed, name) || !slices.Contains(parts, part) {
				t.Fatalf("%q kept %q", in, part)
			}
		}
	})
}

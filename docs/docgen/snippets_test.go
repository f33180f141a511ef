package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/streamgate/streamgate/config"
)

// A YAML fence in README.md or docs/*.md is a whole streamgate.yaml unless
// the line before it (blank lines aside) is a marker:
//
//	<!-- snippet: fragment [models=a,b] [backends=x] -->  part of a config; the
//	    test adds the backends and models it lacks (named, or one each)
//	<!-- snippet: not-config WHAT -->  another tool's YAML (Kubernetes, Envoy,
//	    compose); skipped, and WHAT says which
var markerRE = regexp.MustCompile(`^<!--\s*snippet:\s*([a-z-]+)\s*(.*?)\s*-->$`)

// docSnippet is one ```yaml fence.
type docSnippet struct {
	where      string // file:line of the fence
	kind, args string // the marker's kind and arguments; "" without one
	text       string
}

func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{filepath.Join(root, "README.md")}, files...)
}

func yamlSnippets(t *testing.T, file string) []docSnippet {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(root, file)
	return parseSnippets(rel, string(src))
}

// parseSnippets returns the ```yaml fences of a markdown text with the
// marker before each (blank lines aside).
func parseSnippets(name, src string) []docSnippet {
	var out []docSnippet
	var cur *docSnippet
	var marker []string
	for n, line := range strings.Split(src, "\n") {
		switch {
		case cur != nil && strings.HasPrefix(line, "```"):
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		case line == "```yaml" || line == "```yml":
			cur = &docSnippet{where: name + ":" + strconv.Itoa(n+1)}
			if marker != nil {
				cur.kind, cur.args = marker[1], marker[2]
			}
		case strings.TrimSpace(line) == "":
		default:
			marker = markerRE.FindStringSubmatch(strings.TrimSpace(line))
		}
	}
	return out
}

func TestParseSnippetsTakesTheMarkerRightBeforeAFence(t *testing.T) {
	md := "text\n<!-- snippet: fragment models=a,b -->\n\n```yaml\nlimits: {}\n```\n" +
		"<!-- snippet: not-config kubernetes -->\n```yaml\nkind: Pod\n```\n" +
		"<!-- snippet: fragment -->\nprose in between\n```yaml\nbackends: []\n```\n" +
		"```sh\nmake\n```\n"
	got := parseSnippets("x.md", md)
	want := []docSnippet{
		{where: "x.md:4", kind: "fragment", args: "models=a,b", text: "limits: {}\n"},
		{where: "x.md:8", kind: "not-config", args: "kubernetes", text: "kind: Pod\n"},
		{where: "x.md:13", text: "backends: []\n"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d snippets %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("snippet %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestCompleteFragmentAddsOnlyWhatIsMissing(t *testing.T) {
	text := completeFragment(t, docSnippet{where: "x.md:1", args: "models=gpt-4o backends=vllm",
		text: "limits:\n  tokenizers: [{model: gpt-4o, encoding: heuristic}]\n  backends: [{name: vllm, max_in_flight: 1}]\n"})
	if _, err := config.Parse("x.md", []byte(text)); err != nil {
		t.Fatalf("the completed fragment is not valid: %v\n%s", err, text)
	}
	own := completeFragment(t, docSnippet{where: "x.md:1", text: "backends: [{name: mine, protocol: ollama, endpoints: [\"127.0.0.1:1\"]}]\n"})
	c, err := config.Parse("x.md", []byte(own))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Backends) != 1 || c.Backends[0].Name != "mine" || c.Models[0].Versions[0].Backend != "mine" {
		t.Errorf("the fragment's own backends were replaced or not used: %+v", c.Backends)
	}
}

func TestEveryDocYAMLSnippetIsAValidConfig(t *testing.T) {
	total := 0
	for _, file := range docFiles(t) {
		for _, s := range yamlSnippets(t, file) {
			total++
			t.Run(s.where, func(t *testing.T) {
				text := s.text
				switch s.kind {
				case "":
				case "fragment":
					text = completeFragment(t, s)
				case "not-config":
					if s.args == "" {
						t.Fatalf("%s: a not-config marker must say what the YAML is (e.g. kubernetes)", s.where)
					}
					return
				default:
					t.Fatalf("%s: unknown snippet marker %q; use fragment or not-config", s.where, s.kind)
				}
				if _, err := config.Parse(s.where, []byte(text)); err != nil {
					t.Errorf("%s: the snippet is not a valid config (mark a part of one with <!-- snippet: fragment -->):\n%v", s.where, err)
				}
			})
		}
	}
	if total < 5 {
		t.Errorf("found only %d YAML snippets; the extraction is broken", total)
	}
}

// completeFragment adds the backends and models a fragment lacks: those
// its marker names (models=a,b backends=x), else one of each.
func completeFragment(t *testing.T, s docSnippet) string {
	t.Helper()
	doc := map[string]any{}
	if err := yaml.Unmarshal([]byte(s.text), &doc); err != nil {
		t.Fatalf("%s: cannot parse the fragment: %v", s.where, err)
	}
	want := map[string][]string{"models": {"m"}, "backends": {"b"}}
	for _, arg := range strings.Fields(s.args) {
		k, v, ok := strings.Cut(arg, "=")
		if _, known := want[k]; !ok || !known {
			t.Fatalf("%s: fragment marker argument %q: use models=a,b or backends=x", s.where, arg)
		}
		want[k] = strings.Split(v, ",")
	}
	if _, ok := doc["backends"]; !ok {
		var bs []any
		for _, name := range want["backends"] {
			bs = append(bs, map[string]any{"name": name, "protocol": "openai", "endpoints": []any{"127.0.0.1:8000"}})
		}
		doc["backends"] = bs
	}
	first := doc["backends"].([]any)[0].(map[string]any)["name"]
	if _, ok := doc["models"]; !ok {
		var ms []any
		for _, name := range want["models"] {
			ms = append(ms, map[string]any{"name": name, "backend": first})
		}
		doc["models"] = ms
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

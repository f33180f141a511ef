package main

import (
	"bufio"
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
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []docSnippet
	var cur *docSnippet
	var marker []string
	rel, _ := filepath.Rel(root, file)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur != nil && strings.HasPrefix(line, "```"):
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		case line == "```yaml" || line == "```yml":
			cur = &docSnippet{where: rel + ":" + strconv.Itoa(n)}
			if marker != nil {
				cur.kind, cur.args = marker[1], marker[2]
			}
		case strings.TrimSpace(line) == "":
		default:
			marker = markerRE.FindStringSubmatch(strings.TrimSpace(line))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
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

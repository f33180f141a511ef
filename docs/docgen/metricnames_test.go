package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docMetricRE finds metric names the docs cite.
var docMetricRE = regexp.MustCompile(`\b(?:streamgate|gen_ai)_[a-z0-9_]*[a-z0-9]\b`)

var goStringRE = regexp.MustCompile(`"((?:streamgate|gen_ai)_[a-z0-9_]*)"`)

// TestMetricNamesInDocsExist checks every streamgate_*/gen_ai_* name the
// docs cite against the string literals of the Go sources (metric names,
// cluster names, access-log codes) and the names in the repository's YAML
// (Envoy snippets, deployment examples), histogram suffixes aside.
func TestMetricNamesInDocsExist(t *testing.T) {
	have := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != root {
			return filepath.SkipDir
		}
		isYAML := strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")
		if d.IsDir() || !(isYAML || strings.HasSuffix(path, ".go")) || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if isYAML { // Envoy and deployment configs name clusters bare
			for _, name := range docMetricRE.FindAllString(string(src), -1) {
				have[name] = true
			}
			return nil
		}
		for _, m := range goStringRE.FindAllStringSubmatch(string(src), -1) {
			have[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	known := func(name string) bool {
		for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && have[base] {
				return true
			}
		}
		for h := range have { // a prefix the code completes (streamgate_failover_…)
			if strings.HasSuffix(h, "_") && strings.Count(h, "_") > 1 && strings.HasPrefix(name, h) {
				return true
			}
		}
		return false
	}
	for _, file := range docFiles(t) {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, file)
		for n, line := range strings.Split(string(src), "\n") {
			for _, name := range docMetricRE.FindAllString(line, -1) {
				if !known(name) {
					t.Errorf("%s:%d cites %s, which no Go source names", rel, n+1, name)
				}
			}
		}
	}
}

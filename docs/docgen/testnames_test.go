package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docTestNameRE finds test, benchmark and fuzz names the docs cite, in
// backticks or prose (a sub-test's "/case" suffix is dropped).
var docTestNameRE = regexp.MustCompile(`\b(?:Test|Benchmark|Fuzz)[A-Z][A-Za-z0-9_]*`)

var goTestFuncRE = regexp.MustCompile(`(?m)^func ((?:Test|Benchmark|Fuzz)[A-Za-z0-9_]*)\(`)

// testFuncs lists every Test, Benchmark and Fuzz function in the
// repository's _test.go files.
func testFuncs(t *testing.T) map[string]bool {
	t.Helper()
	have := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range goTestFuncRE.FindAllStringSubmatch(string(src), -1) {
			have[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return have
}

func TestTestNamesInDocsExist(t *testing.T) {
	have := testFuncs(t)
	if len(have) < 100 {
		t.Fatalf("found only %d test functions; the walk is broken", len(have))
	}
	cited := 0
	for _, file := range docFiles(t) {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, file)
		for n, line := range strings.Split(string(src), "\n") {
			for _, name := range docTestNameRE.FindAllString(line, -1) {
				cited++
				if !have[name] {
					t.Errorf("%s:%d cites %s, which is no test, benchmark or fuzz function in the repository", rel, n+1, name)
				}
			}
		}
	}
	if cited == 0 {
		t.Error("the docs cite no test names; the search is broken")
	}
}

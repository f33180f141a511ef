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

var (
	cliCommandRE = regexp.MustCompile(`case "([a-z][a-z-]*)"`)
	cliFlagRE    = regexp.MustCompile(`fs\.(?:Bool|String|Int|Duration)\("([a-z][a-z-]*)"`)
)

// TestCommandsTableNamesEveryCommandAndFlag reads the CLI's commands and
// flags from cmd/streamgate/cli and checks README.md's commands table
// names each.
func TestCommandsTableNamesEveryCommandAndFlag(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(readme), "## Commands")
	table, _, _ = strings.Cut(table, "\n## ")
	files, err := filepath.Glob(filepath.Join(root, "cmd", "streamgate", "cli", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range cliCommandRE.FindAllStringSubmatch(string(src), -1) {
			found++
			if m[1] != "help" && !strings.Contains(table, "`streamgate "+m[1]) {
				t.Errorf("README.md's commands table does not name the command %q (%s)", m[1], f)
			}
		}
		for _, m := range cliFlagRE.FindAllStringSubmatch(string(src), -1) {
			found++
			flag := "-" + m[1] // Go's flag package takes -name and --name alike
			if !strings.Contains(table, flag) {
				t.Errorf("README.md's commands table does not name the flag %s (%s)", flag, f)
			}
		}
	}
	if found < 5 {
		t.Errorf("found only %d commands and flags; the search is broken", found)
	}
}

// Command docgen writes the generated pages under docs/: config.md, the
// configuration reference (from package config's doc comments), and
// errors.md, the error table (from extproc/refusal.go's refusal table).
// `make docs` runs it from the repository root; its tests fail when a page
// is stale, a config field has no doc comment, or a refusal row no "when".
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

// pages are the generated files, relative to the repository root.
var pages = []struct {
	name string
	gen  func(root string) ([]byte, error)
}{
	{"docs/config.md", configReference},
	{"docs/errors.md", errorTable},
}

func main() {
	root := flag.String("root", ".", "the repository root")
	flag.Parse()
	for _, p := range pages {
		data, err := p.gen(*root)
		if err == nil {
			err = writeFile(filepath.Join(*root, p.name), data)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "docgen:", err)
			os.Exit(1)
		}
	}
}

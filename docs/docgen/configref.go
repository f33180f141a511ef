package main

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"

	"github.com/streamgate/streamgate/config"
)

// field is one YAML field of config.Config, as docs/config.md lists it.
type field struct {
	Path    string // YAML path, e.g. backends[].picking.interval
	Type    string // in YAML terms: string, duration, int, number, bool, list of …, map of …, section
	Default string // from the doc comment's "(default X)", "" when none
	Reload  string // live, restart (config.RestartOnly) or next start (config.StartOnly)
	Meaning string // first sentence of the doc comment
	GoName  string // Type.Field, for messages
}

// configPkg is package config's parsed source: its types and which of them
// decode a YAML shorthand (an UnmarshalYAML method).
type configPkg struct {
	types     map[string]*ast.TypeSpec
	shorthand map[string]string // type name → UnmarshalYAML's doc
}

func parseConfig(root string) (*configPkg, error) {
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(root, "config", "*.go"))
	if err != nil {
		return nil, fmt.Errorf("cannot list config sources: %w", err)
	}
	p := &configPkg{types: map[string]*ast.TypeSpec{}, shorthand: map[string]string{}}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			return nil, fmt.Errorf("cannot parse %s: %w", name, err)
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.GenDecl:
				for _, s := range d.Specs {
					if ts, ok := s.(*ast.TypeSpec); ok {
						p.types[ts.Name.Name] = ts
					}
				}
			case *ast.FuncDecl:
				if d.Name.Name == "UnmarshalYAML" && d.Recv != nil && len(d.Recv.List) == 1 {
					p.shorthand[recvName(d.Recv.List[0].Type)] = d.Doc.Text()
				}
			}
		}
	}
	return p, nil
}

func recvName(e ast.Expr) string {
	if s, ok := e.(*ast.StarExpr); ok {
		e = s.X
	}
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// configFields lists every YAML field reachable from config.Config, in
// source order, and the fields that have no doc comment.
func configFields(root string) ([]field, []string, error) {
	p, err := parseConfig(root)
	if err != nil {
		return nil, nil, err
	}
	w := &walker{pkg: p}
	w.walk("Config", "")
	return w.fields, w.undocumented, nil
}

type walker struct {
	pkg          *configPkg
	fields       []field
	undocumented []string
}

func (w *walker) walk(typeName, prefix string) {
	ts, ok := w.pkg.types[typeName]
	if !ok {
		return
	}
	st, ok := ts.Type.(*ast.StructType)
	if !ok {
		return
	}
	for _, f := range st.Fields.List {
		tag := yamlTag(f)
		if tag == "-" {
			continue
		}
		if len(f.Names) == 0 || strings.HasPrefix(tag, ",inline") {
			w.walk(recvName(f.Type), prefix) // embedded: its fields are this level's
			continue
		}
		if !f.Names[0].IsExported() || tag == "" {
			continue
		}
		path := prefix + tag
		goName := typeName + "." + f.Names[0].Name
		doc := strings.TrimSpace(f.Doc.Text())
		if doc == "" && f.Comment != nil {
			doc = strings.TrimSpace(f.Comment.Text())
		}
		if doc == "" {
			w.undocumented = append(w.undocumented, fmt.Sprintf("%s (%s)", goName, path))
		}
		typ, elem, childPrefix := w.describe(f.Type, path)
		meaning := meaningOf(doc, f.Names[0].Name, tag)
		if sh, ok := w.pkg.shorthand[elem]; ok {
			meaning += " Shorthand: " + strings.TrimPrefix(firstSentence(oneLine(sh)), "UnmarshalYAML ")
		}
		w.fields = append(w.fields, field{Path: path, Type: typ, Default: defaultOf(doc), Reload: reloadOf(path), Meaning: meaning, GoName: goName})
		if elem != "" {
			w.walk(elem, childPrefix)
		}
	}
}

// describe returns the YAML type of e, the config struct its values are
// (if any) and the path prefix of that struct's fields.
func (w *walker) describe(e ast.Expr, path string) (typ, elem, childPrefix string) {
	switch t := e.(type) {
	case *ast.StarExpr:
		return w.describe(t.X, path)
	case *ast.SelectorExpr:
		switch x := t.X.(*ast.Ident).Name + "." + t.Sel.Name; x {
		case "time.Duration":
			return "duration", "", ""
		case "time.Time":
			return "timestamp", "", ""
		default:
			return x, "", ""
		}
	case *ast.ArrayType:
		sub, elem, _ := w.describe(t.Elt, path+"[]")
		return "list of " + plural(sub), elem, path + "[]."
	case *ast.MapType:
		sub, elem, _ := w.describe(t.Value, path+".<key>")
		return "map of " + plural(sub), elem, path + ".<key>."
	case *ast.InterfaceType:
		return "any", "", ""
	case *ast.Ident:
		switch t.Name {
		case "string":
			return "string", "", ""
		case "bool":
			return "bool", "", ""
		case "any":
			return "any", "", ""
		case "float32", "float64":
			return "number", "", ""
		}
		if strings.HasPrefix(t.Name, "int") || strings.HasPrefix(t.Name, "uint") {
			return "int", "", ""
		}
		ts, ok := w.pkg.types[t.Name]
		if !ok {
			return t.Name, "", ""
		}
		if _, ok := ts.Type.(*ast.StructType); ok {
			return "section", t.Name, path + "."
		}
		typ, _, _ := w.describe(ts.Type, path)
		return typ, "", ""
	}
	return fmt.Sprintf("%T", e), "", ""
}

func plural(t string) string {
	switch t {
	case "section":
		return "sections"
	case "any":
		return "any values"
	}
	return t + "s"
}

func yamlTag(f *ast.Field) string {
	if f.Tag == nil {
		return ""
	}
	tag := reflect.StructTag(strings.Trim(f.Tag.Value, "`")).Get("yaml")
	if name, _, ok := strings.Cut(tag, ","); ok && name != "" {
		return name
	}
	return tag
}

// reloadOf says how a change to the field at path takes effect: "restart"
// when it is, or is under, a config.RestartOnly setting, "next start"
// under a config.StartOnly one, else "live".
func reloadOf(path string) string {
	plain := strings.ReplaceAll(path, "[]", "")
	under := func(list []config.RestartSetting) bool {
		for _, s := range list {
			if plain == s.Path || strings.HasPrefix(plain, s.Path+".") {
				return true
			}
		}
		return false
	}
	switch {
	case under(config.RestartOnly):
		return "restart"
	case under(config.StartOnly):
		return "next start"
	}
	return "live"
}

var defaultRE = regexp.MustCompile(`(\S*)\s*\(default\b([^)]*)\)`)

// defaultOf returns the default a doc comment states: "(default X)" gives
// X up to the first ", ", "; " or ": "; "X (default)" gives X.
func defaultOf(doc string) string {
	m := defaultRE.FindStringSubmatch(oneLine(doc))
	if m == nil {
		return ""
	}
	rest := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(m[2]), ":"))
	if rest == "" || strings.HasPrefix(m[2], ";") {
		return strings.Trim(m[1], `"',:`)
	}
	if list, _, ok := strings.Cut(rest, "]"); ok && strings.HasPrefix(rest, "[") {
		return list + "]"
	}
	for _, sep := range []string{", ", "; ", ": "} {
		rest, _, _ = strings.Cut(rest, sep)
	}
	return strings.Trim(strings.TrimSpace(rest), `"`)
}

var parenDefaultRE = regexp.MustCompile(`\s*\(default\b[^)]*\)`)

// meaningOf is the first sentence of doc without its default. A leading
// "Name is" repeating the Go field's name is dropped; a leading Go name
// otherwise becomes the YAML name.
func meaningOf(doc, goName, yamlName string) string {
	s := parenDefaultRE.ReplaceAllString(firstSentence(oneLine(doc)), "")
	for _, verb := range []string{" is ", " are "} {
		if rest, ok := strings.CutPrefix(s, goName+verb); ok && rest != "" {
			if first, _, _ := strings.Cut(rest, " "); strings.ContainsAny(first, "_0123456789") {
				return rest // a name such as o200k_base keeps its case
			}
			return strings.ToUpper(rest[:1]) + rest[1:]
		}
	}
	for _, sep := range []string{" ", ","} {
		if rest, ok := strings.CutPrefix(s, goName+sep); ok {
			return "`" + yamlName + "`" + sep + rest
		}
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// firstSentence ends at a period followed by a space and an upper-case
// letter (so "e.g. x" does not end it, nor does "e.g. X"), or at the end.
func firstSentence(s string) string {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == '.' && s[i+1] == ' ' && s[i+2] >= 'A' && s[i+2] <= 'Z' && !strings.HasSuffix(s[:i], "e.g") && !strings.HasSuffix(s[:i], "i.e") {
			return s[:i+1]
		}
	}
	return s
}

// configReference renders docs/config.md.
func configReference(root string) ([]byte, error) {
	fields, undocumented, err := configFields(root)
	if err != nil {
		return nil, err
	}
	if len(undocumented) > 0 {
		return nil, fmt.Errorf("cannot document config: fields without a doc comment: %s", strings.Join(undocumented, ", "))
	}
	var b bytes.Buffer
	b.WriteString(generatedHeader("the doc comments of package config (config/*.go) and config.RestartOnly"))
	b.WriteString(`# Configuration reference

Every field of streamgate.yaml, from the config structs' doc comments. ` + "`validate -c FILE`" + `
checks a file; the README's configuration block and the pages under docs/ explain
how the parts fit together.

- **type** is the YAML type: a *section* is a nested mapping; *list of …* a
  sequence; *map of …* a mapping whose keys you choose (shown as ` + "`<key>`" + `).
  Durations are Go durations (` + "`500ms`, `5s`, `1m`, `1h`" + `).
- **default** is what an absent or zero field becomes; empty means none (or see
  the meaning).
- **reload**: *live* fields take effect when the watched file changes (or on
  SIGHUP). A change to a *restart* field makes the reload fail whole — the
  running config stays and the log says which field — until the process
  restarts (` + "`config.RestartOnly`" + `):
`)
	for _, s := range config.RestartOnly {
		fmt.Fprintf(&b, "  `%s` (%s);\n", s.Path, s.Why)
	}
	b.WriteString(`  a change to a *next start* field is accepted with the rest of the reload
  but the running process keeps the value it started with, and the log warns
  naming the field (` + "`config.StartOnly`" + `):
`)
	for _, s := range config.StartOnly {
		fmt.Fprintf(&b, "  `%s` (%s);\n", s.Path, s.Why)
	}
	b.WriteString("  everything else reloads live (how limits carry over: docs/limits.md).\n")
	section := ""
	for _, f := range fields {
		top, _, _ := strings.Cut(f.Path, ".")
		top = strings.TrimSuffix(top, "[]")
		if top != section {
			section = top
			fmt.Fprintf(&b, "\n## %s\n\n| path | type | default | reload | meaning |\n|---|---|---|---|---|\n", section)
		}
		def := ""
		if f.Default != "" {
			def = "`" + f.Default + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", f.Path, f.Type, def, f.Reload, cell(f.Meaning))
	}
	return b.Bytes(), nil
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func generatedHeader(from string) string {
	return "<!-- Generated by `make docs` (go run ./docs/docgen) from " + from + ". Do not edit. -->\n\n"
}

func writeFile(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}

package main

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
)

// refusalDoc is one row of extproc's refusal table as docs/errors.md shows it.
type refusalDoc struct {
	Kinds                                []string // the sentinels the row matches
	Status                               int
	OpenAIType, Code, AnthropicType, RPC string
	RetryAfter                           bool
	When                                 string // the "// when:" comment above the row
}

// refusalRows reads the refusal table (var refusals) and the fallback row
// (var internalRefusal) from extproc/refusal.go's source.
func refusalRows(root string) ([]refusalDoc, error) {
	fset := token.NewFileSet()
	name := filepath.Join(root, "extproc", "refusal.go")
	f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
	if err != nil {
		return nil, fmt.Errorf("cannot parse %s: %w", name, err)
	}
	when := map[int]string{} // line after a "// when:" comment → its text
	for _, cg := range f.Comments {
		if text, ok := strings.CutPrefix(strings.TrimSpace(cg.Text()), "when:"); ok {
			when[fset.Position(cg.End()).Line+1] = oneLine(text)
		}
	}
	var rows []refusalDoc
	var internal *refusalDoc
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.VAR {
			continue
		}
		for _, s := range gd.Specs {
			vs := s.(*ast.ValueSpec)
			if len(vs.Values) != 1 {
				continue
			}
			switch vs.Names[0].Name {
			case "refusals":
				for _, e := range vs.Values[0].(*ast.CompositeLit).Elts {
					row, err := refusalRow(fset, e.(*ast.CompositeLit), when)
					if err != nil {
						return nil, err
					}
					rows = append(rows, row)
				}
			case "internalRefusal":
				r, err := refusalFields(fset, vs.Values[0].(*ast.CompositeLit))
				if err != nil {
					return nil, err
				}
				r.Kinds = []string{"any other error"}
				r.When = "an error the table does not name: the gateway itself failed; the client sees only \"" + "The gateway failed to process the request.\""
				internal = &r
			}
		}
	}
	if len(rows) == 0 || internal == nil {
		return nil, fmt.Errorf("cannot find refusals and internalRefusal in %s", name)
	}
	return append(rows, *internal), nil
}

func refusalRow(fset *token.FileSet, row *ast.CompositeLit, when map[int]string) (refusalDoc, error) {
	pos := fset.Position(row.Pos())
	if len(row.Elts) != 2 {
		return refusalDoc{}, fmt.Errorf("%s: cannot read a refusal row of %d elements", pos, len(row.Elts))
	}
	r, err := refusalFields(fset, row.Elts[1].(*ast.CompositeLit))
	if err != nil {
		return r, err
	}
	for _, k := range row.Elts[0].(*ast.CompositeLit).Elts {
		r.Kinds = append(r.Kinds, exprString(k))
	}
	r.When = when[pos.Line]
	if r.When == "" {
		return r, fmt.Errorf("%s: refusal row %s has no \"// when:\" comment above it saying when a client gets it", pos, r.Code)
	}
	return r, nil
}

// refusalFields reads refusal{status, openAIType, code, anthropicType, grpc, retryAfter}.
func refusalFields(fset *token.FileSet, lit *ast.CompositeLit) (refusalDoc, error) {
	pos := fset.Position(lit.Pos())
	if len(lit.Elts) != 6 {
		return refusalDoc{}, fmt.Errorf("%s: cannot read a refusal of %d fields (want status, OpenAI type, code, Anthropic type, gRPC code, retryAfter); update docs/docgen", pos, len(lit.Elts))
	}
	var r refusalDoc
	var err error
	if r.Status, err = httpStatus(exprString(lit.Elts[0])); err != nil {
		return r, fmt.Errorf("%s: %w", pos, err)
	}
	r.OpenAIType, r.Code, r.AnthropicType = unquote(lit.Elts[1]), unquote(lit.Elts[2]), unquote(lit.Elts[3])
	if r.RPC, err = grpcCode(exprString(lit.Elts[4])); err != nil {
		return r, fmt.Errorf("%s: %w", pos, err)
	}
	r.RetryAfter = exprString(lit.Elts[5]) == "true"
	return r, nil
}

// httpStatus maps "http.StatusTooManyRequests" to 429.
func httpStatus(name string) (int, error) {
	for code := 100; code < 600; code++ {
		if t := http.StatusText(code); t != "" && name == "http.Status"+strings.NewReplacer(" ", "", "-", "").Replace(t) {
			return code, nil
		}
	}
	return 0, fmt.Errorf("cannot map %s to an HTTP status", name)
}

// grpcCode maps "codes.ResourceExhausted" to "RESOURCE_EXHAUSTED (8)".
func grpcCode(name string) (string, error) {
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if "codes."+c.String() == name {
			return fmt.Sprintf("%s (%d)", screaming(c.String()), c), nil
		}
	}
	return "", fmt.Errorf("cannot map %s to a gRPC code", name)
}

// screaming turns ResourceExhausted into RESOURCE_EXHAUSTED, gRPC's own spelling.
func screaming(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

func exprString(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return exprString(e.X) + "." + e.Sel.Name
	case *ast.BasicLit:
		return e.Value
	}
	return fmt.Sprintf("%T", e)
}

func unquote(e ast.Expr) string {
	s, err := strconv.Unquote(exprString(e))
	if err != nil {
		return exprString(e)
	}
	return s
}

// errorTable renders docs/errors.md.
func errorTable(root string) ([]byte, error) {
	rows, err := refusalRows(root)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(generatedHeader("the refusal table, extproc/refusal.go"))
	b.WriteString(`# Errors

Every request the gateway itself refuses gets one of these, in the shape of the
API the client called: an OpenAI JSON error (` + "`{\"error\": {\"message\", \"type\", \"param\", \"code\"}}`" + `)
on the OpenAI paths, an Anthropic JSON error (` + "`{\"type\": \"error\", \"error\": {\"type\", \"message\"}}`" + `)
on ` + "`/v1/messages`" + `, and a gRPC status on gRPC. The message is written for the client
and names what to change; it never echoes secrets or prompt text. The code is also
the ` + "`error_type`" + ` label of ` + "`gen_ai_server_request_duration_seconds`" + `, the span's
` + "`error.type`" + ` and, prefixed with ` + "`streamgate_`" + `, the response code details
(` + "`details`" + `) in Envoy's access log. Errors a backend returns pass
through unchanged. *Retry-After* rows carry a ` + "`Retry-After`" + ` header on HTTP and
` + "`google.rpc.RetryInfo`" + ` on gRPC.

Replies Envoy makes itself are not in this table: the listener's local reply
mappers (` + "`localReplies` in xds/listener.go" + `) give them the OpenAI error shape —
a body over ` + "`gateway.max_request_body_bytes`" + ` before ext_proc sees it (413
` + "`request_too_large`" + `), headers over Envoy's limits (431
` + "`request_headers_too_large`" + `), a request Envoy's HTTP codec cannot parse (400
or 501 ` + "`invalid_http_request`" + `: conflicting Content-Length and Transfer-Encoding,
bad chunks, NUL in a header), a request that does not arrive in time (408
` + "`request_timeout`" + `), an upstream failure (502/503/504 with Envoy's response code
details as the code, e.g. ` + "`no_healthy_upstream`" + `), an ext_proc timeout (504
` + "`gateway_timeout`" + `) or a broken ext_proc stream (500 ` + "`internal_error`" + `).

| code | HTTP | OpenAI type | Anthropic type | gRPC | Retry-After | when |
|---|---|---|---|---|---|---|
`)
	for _, r := range rows {
		retry := ""
		if r.RetryAfter {
			retry = "yes"
		}
		fmt.Fprintf(&b, "| `%s` | %d | `%s` | `%s` | %s | %s | %s |\n", r.Code, r.Status, r.OpenAIType, r.AnthropicType, r.RPC, retry, cell(r.When))
	}
	return b.Bytes(), nil
}

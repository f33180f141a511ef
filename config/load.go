package config

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Problem is one thing wrong with a config file, located by line and column.
type Problem struct {
	File   string
	Line   int
	Column int
	Msg    string
}

// Error formats the problem as "file:line:col: sentence".
func (p *Problem) Error() string {
	if p.Line == 0 {
		return fmt.Sprintf("%s: %s", p.File, p.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Column, p.Msg)
}

// Load reads, decodes and validates the file at path. On failure the error
// joins every Problem found (errors.As finds the first; Problems lists all).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read config: %w", err)
	}
	return Parse(path, data)
}

// Problems returns every Problem joined in err, in file order.
func Problems(err error) []*Problem {
	var out []*Problem
	var walk func(error)
	walk = func(e error) {
		if p, ok := e.(*Problem); ok {
			out = append(out, p)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
		}
	}
	walk(err)
	return out
}

// Parse decodes and validates data read from the named file.
func Parse(file string, data []byte) (*Config, error) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, yamlProblem(file, err)
	}
	var cfg Config
	if len(f.Docs) > 0 && f.Docs[0].Body != nil {
		dec := yaml.NewDecoder(strings.NewReader(""), yaml.DisallowUnknownField())
		if err := dec.DecodeFromNode(f.Docs[0].Body, &cfg); err != nil {
			return nil, locate(yamlProblem(file, err), f)
		}
	}
	if len(f.Docs) > 1 {
		return nil, &Problem{File: file, Msg: "the file holds several YAML documents; put everything in one"}
	}
	cfg.Source = file
	sum := sha256.Sum256(data)
	cfg.digest = sum[:]
	cfg.applyDefaults()
	v := &validator{cfg: &cfg, file: file, ast: f}
	v.validate(&cfg)
	if len(v.problems) > 0 {
		return nil, errors.Join(v.problems...)
	}
	return &cfg, nil
}

func yamlProblem(file string, err error) error {
	var ye yaml.Error
	if errors.As(err, &ye) {
		p := &Problem{File: file, Msg: plainYAMLMessage(ye.GetMessage())}
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			p.Line, p.Column = tk.Position.Line, tk.Position.Column
		}
		return p
	}
	return &Problem{File: file, Msg: err.Error()}
}

// locate gives a position to a decode error the YAML library left without
// one (e.g. a bad duration) by finding the scalar its message quotes.
func locate(err error, f *ast.File) error {
	p, ok := err.(*Problem)
	if !ok || p.Line != 0 {
		return err
	}
	_, rest, found := strings.Cut(p.Msg, "\"")
	quoted, _, closed := strings.Cut(rest, "\"")
	if !found || !closed || quoted == "" {
		return err
	}
	for _, doc := range f.Docs {
		ast.Walk(scalarFinder{want: quoted, p: p}, doc)
	}
	return p
}

type scalarFinder struct {
	want string
	p    *Problem
}

func (s scalarFinder) Visit(n ast.Node) ast.Visitor {
	if s.p.Line != 0 {
		return nil
	}
	if sn, ok := n.(ast.ScalarNode); ok && fmt.Sprint(sn.GetValue()) == s.want {
		tk := n.GetToken()
		s.p.Line, s.p.Column = tk.Position.Line, tk.Position.Column
		return nil
	}
	return s
}

func plainYAMLMessage(msg string) string {
	if name, ok := strings.CutPrefix(msg, "unknown field "); ok {
		return fmt.Sprintf("unknown field %s: check its spelling and where it is nested", name)
	}
	return msg
}

// validator collects Problems, locating each through the parsed YAML tree.
type validator struct {
	cfg      *Config
	file     string
	ast      *ast.File
	problems []error
}

// at records a problem located at the node of a YAML path such as
// $.backends[1].name; when the node is absent it falls back to the parent.
func (v *validator) at(path string, format string, args ...any) {
	p := &Problem{File: v.file, Msg: fmt.Sprintf(format, args...)}
	for cur := path; cur != ""; cur = parentPath(cur) {
		yp, err := yaml.PathString(cur)
		if err != nil {
			continue
		}
		n, err := yp.FilterFile(v.ast)
		if err != nil || n == nil {
			continue
		}
		if tk := n.GetToken(); tk != nil && tk.Position != nil {
			p.Line, p.Column = tk.Position.Line, tk.Position.Column
		}
		break
	}
	v.problems = append(v.problems, p)
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i <= 1 {
		return ""
	}
	return p[:i]
}

func (v *validator) validate(c *Config) {
	v.hostPort("$.gateway.listen", c.Gateway.Listen)
	v.hostPort("$.xds.listen", c.XDS.Listen)
	v.hostPort("$.metrics.listen", c.Metrics.Listen)
	v.hostPort("$.envoy.admin", c.Envoy.Admin)
	if !strings.HasPrefix(c.ExtProc.Listen, "unix:") {
		v.hostPort("$.extproc.listen", c.ExtProc.Listen)
	}
	if c.Gateway.MaxRequestBodyBytes < 0 {
		v.at("$.gateway.max_request_body_bytes", "max_request_body_bytes must be positive")
	}
	if c.Gateway.MaxUploadBytes < 0 {
		v.at("$.gateway.max_upload_bytes", "max_upload_bytes must be positive")
	}
	if d := c.Gateway.MaxJSONDepth; d < 0 || d > MaxMaxJSONDepth {
		v.at("$.gateway.max_json_depth", "max_json_depth must be between 1 and %d", MaxMaxJSONDepth)
	}
	if c.ExtProc.Address != "" && !strings.HasPrefix(c.ExtProc.Address, "unix:") {
		v.hostPort("$.extproc.address", c.ExtProc.Address)
	}
	if c.Gateway.DrainTimeout < 0 {
		v.at("$.gateway.drain_timeout", "drain_timeout must be positive")
	}
	v.listenerTLS(c)
	if len(c.Backends) == 0 {
		v.at("$.backends", "no backends are defined; add at least one under backends")
	}
	seen := map[string]int{}
	for i, b := range c.Backends {
		p := fmt.Sprintf("$.backends[%d]", i)
		switch {
		case b.Name == "":
			v.at(p, "backend %d has no name", i+1)
		case !validName(b.Name):
			v.at(p+".name", "backend name %q may hold only letters, digits, '-', '_' and '.'", b.Name)
		case strings.HasPrefix(b.Name, "streamgate_"):
			v.at(p+".name", "backend name %q is reserved: names starting with streamgate_ are Streamgate's own clusters", b.Name)
		}
		if j, dup := seen[b.Name]; dup && b.Name != "" {
			v.at(p+".name", "backend name %q is already used by backend %d", b.Name, j+1)
		}
		seen[b.Name] = i
		if !b.Protocol.Known() {
			v.at(p+".protocol", "backend %q has protocol %q; supported: %s", b.Name, b.Protocol, knownProtocols())
		}
		if len(b.Endpoints) == 0 {
			v.at(p, "backend %q has no endpoints", b.Name)
		}
		for k, ep := range b.Endpoints {
			v.hostPort(fmt.Sprintf("%s.endpoints[%d]", p, k), ep.Address)
		}
		v.validateBackendKnobs(i, &b)
		v.validateCredential(p, &c.Backends[i])
		v.validateProvider(p, &c.Backends[i])
		v.validateAzure(p, &c.Backends[i])
		v.validateGemini(p, &c.Backends[i])
	}
	models := map[string]int{}
	for i, m := range c.Models {
		p := fmt.Sprintf("$.models[%d]", i)
		if m.Name == "" {
			v.at(p, "model %d has no name", i+1)
		}
		if j, dup := models[m.Name]; dup && m.Name != "" {
			v.at(p+".name", "model name %q is already used by model %d", m.Name, j+1)
		}
		models[m.Name] = i
		if m.DefaultMaxTokens < 0 {
			v.at(p+".default_max_tokens", "model %q has default_max_tokens %d; use a positive number", m.Name, m.DefaultMaxTokens)
		}
		v.versions(p, m, seen)
		v.fallbacks(p, m, seen)
		v.validateShaping(p, &c.Models[i])
		v.validateGRPCModel(p, m)
		v.validateModelEndpoints(p, m)
	}
	if c.Gateway.RetryBudgetPercent < 0 || c.Gateway.RetryBudgetPercent > 100 {
		v.at("$.gateway.retry_budget_percent", "retry_budget_percent is a percentage (0-100)")
	}
	v.validateEdge(c)
	v.validateDeadlines(c)
	v.validateServices(c)
	v.validateAuth(c.Auth)
	v.validateLimits(c, seen, models)
	v.validateTelemetry(&c.Telemetry, models)
	v.validateBridge(c.Bridge)
	v.validateBatch(c.Batch)
}

// fallbacks checks a model's failover list: known backends, each once, none
// the same as a version's own backend.
func (v *validator) fallbacks(p string, m Model, backends map[string]int) {
	seen := map[string]bool{}
	for _, ver := range m.Versions {
		seen[ver.Backend] = len(m.Versions) == 1
	}
	for k, fb := range m.Fallbacks {
		fp := fmt.Sprintf("%s.fallbacks[%d]", p, k)
		if _, ok := backends[fb]; !ok {
			v.at(fp, "model %q falls back to backend %q, which is not defined under backends", m.Name, fb)
			continue
		}
		if seen[fb] {
			v.at(fp, "model %q lists backend %q twice in its failover chain", m.Name, fb)
		}
		seen[fb] = true
		// In a chain of one protocol the gateway injects one upstream
		// credential per request, chosen with the version; a retry on a
		// fallback reuses it. A chain mixing protocols authorizes each
		// attempt for its own backend (crossFallback).
		for _, ver := range m.Versions {
			if !v.cfg.MixesProtocols(ver.Backend, m.Fallbacks) && !sameCredential(v.cfg.Backend(ver.Backend), v.cfg.Backend(fb)) {
				v.at(fp, "model %q falls back from backend %q to %q, which takes a different upstream credential; failover needs the same one", m.Name, ver.Backend, fb)
				break
			}
		}
		v.crossFallback(fp, m, fb)
	}
	v.fallbackModels(p, m)
}

func sameCredential(a, b *Backend) bool {
	if a == nil || b == nil {
		return true
	}
	if !sameAWS(a, b) || !sameAzure(a, b) || !sameVertex(a, b) {
		return false
	}
	if a.Credential == nil || b.Credential == nil {
		return a.Credential == nil && b.Credential == nil
	}
	return *a.Credential == *b.Credential
}

// versions checks a model's versions: each names a known backend, names
// are unique, and unpinned traffic has somewhere to go.
func (v *validator) versions(p string, m Model, backends map[string]int) {
	if m.Backend != "" && !m.shortForm {
		v.at(p+".backend", "model %q has both backend and versions; use one or the other", m.Name)
		return
	}
	if len(m.Versions) == 0 {
		v.at(p, "model %q names no backend; set backend or versions", m.Name)
		return
	}
	names := map[string]bool{}
	var total uint64
	for j, ver := range m.Versions {
		vp := fmt.Sprintf("%s.versions[%d]", p, j)
		if m.shortForm {
			vp = p
		}
		switch {
		case ver.Name == "":
			v.at(vp, "version %d of model %q has no name", j+1, m.Name)
		case names[ver.Name]:
			v.at(vp+".name", "model %q has two versions named %q", m.Name, ver.Name)
		}
		names[ver.Name] = true
		if _, ok := backends[ver.Backend]; !ok {
			if ver.Backend == "" {
				v.at(vp, "version %q of model %q names no backend", ver.Name, m.Name)
			} else if m.shortForm {
				v.at(vp+".backend", "model %q points at backend %q, which is not defined under backends", m.Name, ver.Backend)
			} else {
				v.at(vp+".backend", "version %q of model %q points at backend %q, which is not defined under backends", ver.Name, m.Name, ver.Backend)
			}
		}
		total += uint64(ver.Weight)
	}
	if total == 0 {
		v.at(p+".versions", "model %q has no version with a weight above 0, so unpinned requests could go nowhere", m.Name)
	}
}

// hostPort checks that s is host:port with a numeric port in 1..65535.
func (v *validator) hostPort(path, s string) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		v.at(path, "%q is not a valid address: write host:port, e.g. 127.0.0.1:8000", s)
		return
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		v.at(path, "%q has port %q; a port is a number from 1 to 65535", s, port)
		return
	}
	if host == "" {
		v.at(path, "%q has no host; use 0.0.0.0 to listen everywhere or name the server", s)
		return
	}
	if strings.ContainsAny(host, " /") {
		v.at(path, "%q has an invalid host %q", s, host)
	}
}

func validName(s string) bool {
	for _, r := range s {
		ok := r == '-' || r == '_' || r == '.' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// CheckSources checks the secrets and files the config names but Load does
// not read: backends[].credential.env and .file, limits.redis.password_env,
// bridge.credentials[] and batch.credentials[] env and file and backends[].tls.ca_file (readable, not only present). It returns nil
// when all are usable, else the problems joined (see Problems), each located
// at its field in c.Source like Load's. It reads the environment and the
// files but keeps no secret and puts none in a message. `validate` calls it;
// the ext_proc server reads the same sources when it starts.
func (c *Config) CheckSources() error {
	v := &validator{cfg: c, file: c.Source, ast: sourceAST(c.Source)}
	for i := range c.Backends {
		b := &c.Backends[i]
		p := fmt.Sprintf("$.backends[%d]", i)
		if cr := b.Credential; cr != nil {
			switch {
			case cr.Env != "":
				if os.Getenv(cr.Env) == "" {
					v.at(p+".credential.env", "backend %q: credential.env: environment variable %s is empty or unset", b.Name, cr.Env)
				}
			case cr.File != "":
				v.readable(p+".credential.file", fmt.Sprintf("backend %q: credential.file", b.Name), cr.File, true)
			}
		}
		if b.TLS != nil && b.TLS.CAFile != "" {
			v.readable(p+".tls.ca_file", fmt.Sprintf("backend %q: tls.ca_file", b.Name), b.TLS.CAFile, false)
		}
	}
	if t := c.Gateway.TLS; t != nil {
		for _, f := range []struct{ path, file string }{{"cert_file", t.CertFile}, {"key_file", t.KeyFile}, {"client_ca_file", t.ClientCAFile}} {
			if f.file != "" {
				v.readable("$.gateway.tls."+f.path, "gateway.tls."+f.path, f.file, true)
			}
		}
	}
	if b := c.Bridge; b != nil {
		for i, cr := range b.Credentials {
			p := fmt.Sprintf("$.bridge.credentials[%d]", i)
			switch {
			case cr.Env != "" && os.Getenv(cr.Env) == "":
				v.at(p+".env", "bridge credential %q: environment variable %s is empty or unset", cr.Name, cr.Env)
			case cr.File != "":
				v.readable(p+".file", fmt.Sprintf("bridge credential %q: file", cr.Name), cr.File, true)
			}
		}
	}
	if b := c.Batch; b != nil {
		for i, cr := range b.Credentials {
			p := fmt.Sprintf("$.batch.credentials[%d]", i)
			switch {
			case cr.Env != "" && os.Getenv(cr.Env) == "":
				v.at(p+".env", "batch credential %q: environment variable %s is empty or unset", cr.Name, cr.Env)
			case cr.File != "":
				v.readable(p+".file", fmt.Sprintf("batch credential %q: file", cr.Name), cr.File, true)
			}
		}
	}
	if c.Limits != nil && c.Limits.Redis != nil && c.Limits.Redis.PasswordEnv != "" {
		if env := c.Limits.Redis.PasswordEnv; os.Getenv(env) == "" {
			v.at("$.limits.redis.password_env", "limits.redis.password_env: environment variable %s is empty or unset", env)
		}
	}
	return errors.Join(v.problems...)
}

// readable records a problem at path unless file can be read; with
// nonEmpty, a file holding only whitespace is a problem too.
func (v *validator) readable(path, what, file string, nonEmpty bool) {
	data, err := os.ReadFile(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		v.at(path, "%s: file %q does not exist", what, file)
	case err != nil:
		v.at(path, "%s: cannot read file %q: %v", what, file, unwrapPath(err))
	case nonEmpty && strings.TrimSpace(string(data)) == "":
		v.at(path, "%s: file %q is empty", what, file)
	}
}

// unwrapPath drops the path an *fs.PathError repeats.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// StartOnlyChecks lists, one line each, what the config depends on that
// only a start can check: servers to reach and addresses to bind.
func (c *Config) StartOnlyChecks() []string {
	out := []string{"listen addresses (gateway, extproc, xds, metrics, envoy.admin) are free to bind"}
	if c.Limits != nil && c.Limits.Redis != nil {
		out = append(out, fmt.Sprintf("limits.redis: %s is reachable and accepts the password", c.Limits.Redis.Address))
	}
	if c.Auth != nil {
		for i, is := range c.Auth.JWT {
			out = append(out, fmt.Sprintf("auth.jwt[%d].jwks_url: %s serves the issuer's keys", i, is.JWKSURL))
		}
	}
	if n := c.Telemetry.NATS; n != nil {
		out = append(out, fmt.Sprintf("telemetry.nats.url: %s is reachable", n.URL))
	}
	if t := c.Telemetry.Tracing; t != nil {
		out = append(out, fmt.Sprintf("telemetry.tracing.endpoint: %s accepts spans", t.Endpoint))
	}
	if b := c.Bridge; b != nil {
		for _, src := range b.Sources {
			switch {
			case src.NATS != nil:
				out = append(out, fmt.Sprintf("bridge.sources %s: %s is reachable and has the JetStream stream %s", src.Name, src.NATS.URL, src.NATS.Stream))
			case src.Kafka != nil:
				out = append(out, fmt.Sprintf("bridge.sources %s: Kafka %s is reachable", src.Name, strings.Join(src.Kafka.Brokers, ",")))
			}
		}
	}
	out = append(out, "backends: endpoints answer and their credentials are accepted")
	return out
}

// sourceAST parses the config file again to locate problems; an empty tree
// (problems without a line) when it cannot be read.
func sourceAST(file string) *ast.File {
	empty := &ast.File{}
	if file == "" {
		return empty
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return empty
	}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return empty
	}
	return f
}

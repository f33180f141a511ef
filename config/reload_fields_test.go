package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// reloadBase sets every optional section, so that each leaf field exists
// in the loaded config and the walk reaches it.
const reloadBase = `
gateway: {max_request_body_bytes: 1000, drain_timeout: 30s, tls: {cert_file: /c, key_file: /k, client_ca_file: /ca}}
extproc: {listen: "127.0.0.1:50051"}
xds: {listen: "127.0.0.1:18001"}
metrics: {listen: "127.0.0.1:9464"}
envoy: {admin: "127.0.0.1:9901", node_id: a, max_heap_bytes: 1073741824}
backends:
  - name: b
    protocol: openai
    endpoints: ["127.0.0.1:8000"]
    tls: {insecure_skip_verify: true}
    credential: {header: authorization, env: SG_KEY}
    health_check: {}
    outlier_detection: {}
    circuit_breaker: {}
    connection_pool: {}
    picking: {}
  - {name: b2, protocol: openai, endpoints: ["127.0.0.1:8001"], credential: {header: authorization, env: SG_KEY}}
models:
  - name: m
    versions: [{name: v1, backend: b, weight: 1}]
    fallbacks: [b2]
    shaping: {defaults: {temperature: 0.5}}
auth:
  tenants: [{name: t, models: ["*"], api_keys: [{hash: "sha256:0000000000000000000000000000000000000000000000000000000000000000"}], client_certificates: [{dns_san: a}]}]
  jwt:
    - {issuer: "https://issuer.example", jwks_url: "https://issuer.example/jwks", audiences: [a]}
limits: {store: redis, redis: {address: "127.0.0.1:6379", password_env: SG_PW, db: 0, timeout: 50ms, key_prefix: sg}, tenants: [{name: t, requests_per_minute: 10}], tokenizers: [{model: m, encoding: heuristic}]}
telemetry:
  usage: true
  prices: {m: {input_per_million: 1, output_per_million: 2}}
  nats: {url: "nats://127.0.0.1:4222"}
  tracing: {endpoint: "127.0.0.1:4317"}
`

// TestReloadDecisionForEveryField changes every leaf field of a loaded
// config, one at a time, and checks the reload decision against the one
// list of restart-only settings: a field under a RestartOnly path is
// refused, every other field (StartOnly ones included) is accepted. This
// is the behaviour docs/config.md's reload column states for each field.
func TestReloadDecisionForEveryField(t *testing.T) {
	old := loadText(t, reloadBase)
	checked := 0
	for _, path := range leafPaths(reflect.TypeOf(Config{}), "") {
		next := loadText(t, reloadBase)
		if !mutate(reflect.ValueOf(next).Elem(), strings.Split(path, ".")) {
			continue // a nil section or empty list in the base: nothing to change
		}
		checked++
		err := reloadable(old, next)
		restart := false
		for _, s := range RestartOnly {
			restart = restart || path == s.Path || strings.HasPrefix(path, s.Path+".")
		}
		if restart {
			assert.Error(t, err, "%s is restart-only, but a reload changing it was accepted", path)
		} else {
			assert.NoError(t, err, "%s reloads live (or at the next start), but a reload changing it was refused", path)
		}
	}
	t.Logf("%d fields changed one at a time", checked)
	require.Greater(t, checked, 100, "the walk reached the config's fields")
}

// leafPaths lists the YAML paths of t's scalar and list fields; list
// elements are walked as "name[]".
func leafPaths(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		p := name
		if prefix != "" && name != "" {
			p = prefix + "." + name
		} else if name == "" { // inline
			p = prefix
		}
		switch {
		case ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Time{}):
			out = append(out, leafPaths(ft, p)...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, leafPaths(ft.Elem(), p+"[]")...)
		default:
			out = append(out, p)
		}
	}
	return out
}

// mutate changes the field at path in v (a Config) to another value of its
// type; false when a section or list on the way is empty.
func mutate(v reflect.Value, path []string) bool {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return false
		}
		v = v.Elem()
	}
	if len(path) == 0 {
		return change(v)
	}
	name, list := strings.CutSuffix(path[0], "[]")
	f := fieldByYAML(v, name)
	if !f.IsValid() {
		return false
	}
	if list {
		if f.Len() == 0 {
			return false
		}
		f = f.Index(0)
	}
	return mutate(f, path[1:])
}

func fieldByYAML(v reflect.Value, name string) reflect.Value {
	t := v.Type()
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag == name && t.Field(i).IsExported() {
			return v.Field(i)
		}
	}
	// an inline struct holds it
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("yaml"); tag == ",inline" {
			if f := fieldByYAML(v.Field(i), name); f.IsValid() {
				return f
			}
		}
	}
	return reflect.Value{}
}

// change sets v to a different value of its kind.
func change(v reflect.Value) bool {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Uint, reflect.Uint32, reflect.Uint64:
		v.SetUint(v.Uint() + 1)
	case reflect.Float64, reflect.Float32:
		v.SetFloat(v.Float() + 1)
	case reflect.Slice:
		v.Set(reflect.Append(v, reflect.New(v.Type().Elem()).Elem()))
	case reflect.Map:
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		v.SetMapIndex(reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem())
	case reflect.Struct: // time.Time
		if tm, ok := v.Interface().(time.Time); ok {
			v.Set(reflect.ValueOf(tm.Add(time.Hour)))
			return true
		}
		return false
	default:
		return false
	}
	return true
}

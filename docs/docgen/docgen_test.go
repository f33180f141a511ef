package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamgate/streamgate/config"
)

// root is the repository root, seen from this package's directory.
const root = "../.."

func TestGeneratedPagesAreCurrent(t *testing.T) {
	for _, p := range pages {
		t.Run(p.name, func(t *testing.T) {
			want, err := p.gen(root)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(root, p.name))
			if err != nil {
				t.Fatalf("cannot read %s: %v; run `make docs`", p.name, err)
			}
			if string(got) != string(want) {
				t.Fatalf("%s is stale: it differs from what its sources generate; run `make docs` and commit the result", p.name)
			}
		})
	}
}

func TestEveryConfigFieldHasADocComment(t *testing.T) {
	_, undocumented, err := configFields(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range undocumented {
		t.Errorf("config field %s has no doc comment; docs/config.md takes its meaning from it", f)
	}
}

// TestReferenceListsEveryDecodedField checks the source walk against what
// the YAML decoder sees: every yaml-tagged field reachable from
// config.Config, found by reflection.
func TestReferenceListsEveryDecodedField(t *testing.T) {
	fields, _, err := configFields(root)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, f := range fields {
		listed[f.Path] = true
	}
	decoded := map[string]bool{}
	reflectPaths(reflect.TypeOf(config.Config{}), "", decoded)
	for p := range decoded {
		if !listed[p] {
			t.Errorf("%s is decoded from YAML but missing from docs/config.md", p)
		}
	}
	for p := range listed {
		if !decoded[p] {
			t.Errorf("docs/config.md lists %s, which the YAML decoder does not know", p)
		}
	}
}

func reflectPaths(t reflect.Type, prefix string, out map[string]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "-" || !f.IsExported() {
			continue
		}
		if f.Anonymous || strings.Contains(opts, "inline") {
			reflectPaths(f.Type, prefix, out)
			continue
		}
		if tag == "" {
			continue
		}
		path := prefix + tag
		out[path] = true
		ft := f.Type
		for {
			switch ft.Kind() {
			case reflect.Pointer:
				ft = ft.Elem()
				continue
			case reflect.Slice:
				path += "[]"
				ft = ft.Elem()
				continue
			case reflect.Map:
				path += ".<key>"
				ft = ft.Elem()
				continue
			}
			break
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Time{}) {
			reflectPaths(ft, path+".", out)
		}
	}
}

func TestRestartOnlySettingsNameConfigFields(t *testing.T) {
	fields, _, err := configFields(root)
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string]bool{}
	for _, f := range fields {
		paths[f.Path] = true
	}
	for _, s := range append(append([]config.RestartSetting(nil), config.RestartOnly...), config.StartOnly...) {
		if !paths[s.Path] {
			t.Errorf("config.RestartOnly or StartOnly names %q, which is no config field", s.Path)
		}
	}
}

// fullConfig sets every optional section, so that Load fills in every
// default a doc comment states.
const fullConfig = `
gateway:
  tls: {cert_file: /c, key_file: /k}
backends:
  - name: b
    protocol: openai
    endpoints: ["127.0.0.1:8000"]
    tls: {insecure_skip_verify: true}
    health_check: {}
    outlier_detection: {}
    circuit_breaker: {}
    connection_pool: {}
    picking: {}
models:
  - name: m
    versions: [{name: v1, backend: b, weight: 1}]
    shaping: {}
auth:
  tenants: [{name: t, models: ["*"]}]
  jwt:
    - {issuer: "https://issuer.example", jwks_url: "https://issuer.example/jwks", audiences: [a]}
limits:
  redis: {address: "127.0.0.1:6379"}
  tokenizers: [{model: m, encoding: heuristic}]
telemetry:
  nats: {url: "nats://127.0.0.1:4222"}
  tracing: {endpoint: "127.0.0.1:4317"}
bridge:
  sources: [{name: q, nats: {url: "nats://127.0.0.1:4222", stream: Q}, dead_letter: d}]
batch:
  dir: /tmp/streamgate-batch
`

// proseDefaults are fields whose stated default is not a literal value:
// it depends on other fields or is applied where the value is read.
var proseDefaults = map[string]string{
	"models[].upstream_model":                 "the model's name",
	"models[].versions[].upstream_model":      "the model's name",
	"backends[].picking.timeout":              "derived from the interval",
	"backends[].picking.stale_after":          "derived from the interval",
	"limits.tokenizers[].chars_per_token":     "applied by the tokenizer",
	"telemetry.tenant_label":                  "applied by Telemetry.TenantLabels",
	"telemetry.usage":                         "applied by Telemetry.ReadsUsage",
	"telemetry.tracing.sampling":              "applied by Tracing.SampleRatio",
	"backends[].connection_pool.idle_timeout": "Envoy's own default: xds leaves it unset",
	"bridge.sources[].kafka.group":            "fullConfig's first source is NATS; config.TestBridgeDefaults checks it",
	"bridge.sources[].credential":             "prose: no credential",
	"bridge.gateway_url":                      "derived from gateway.listen; config.TestBridgeDefaults checks it",
	"bridge.sources[].nats.subject":           "prose: no filter",
	"batch.gateway_url":                       "derived from gateway.listen; config.TestBatchSection checks it",
}

func TestDocumentedDefaultsAreWhatLoadApplies(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "streamgate.yaml")
	if err := os.WriteFile(file, []byte(fullConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	fields, _, err := configFields(root)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range fields {
		if f.Default == "" {
			continue
		}
		if _, ok := proseDefaults[f.Path]; ok {
			continue
		}
		v, ok := valueAt(reflect.ValueOf(cfg).Elem(), f.Path)
		if !ok {
			t.Errorf("%s: cannot reach the field in the loaded config to check its default %q", f.Path, f.Default)
			continue
		}
		if !sameDefault(v, f.Default) {
			t.Errorf("%s: the doc comment says default %q, Load applies %v", f.Path, f.Default, v.Interface())
		}
		checked++
	}
	if checked < 40 {
		t.Errorf("only %d defaults were checked; the walk lost fields", checked)
	}
}

// valueAt follows a docs/config.md path into v, taking the first element
// of lists.
func valueAt(v reflect.Value, path string) (reflect.Value, bool) {
	for _, part := range strings.Split(path, ".") {
		name, list := strings.CutSuffix(part, "[]")
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return v, false
			}
			v = v.Elem()
		}
		next, ok := fieldByTag(v, name)
		if !ok {
			return v, false
		}
		v = next
		if list {
			if v.Len() == 0 {
				return v, false
			}
			v = v.Index(0)
		}
	}
	return v, true
}

func fieldByTag(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag, opts, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag == name {
			return v.Field(i), true
		}
		if strings.Contains(opts, "inline") || t.Field(i).Anonymous {
			if f, ok := fieldByTag(v.Field(i), name); ok {
				return f, true
			}
		}
	}
	return v, false
}

// sameDefault compares a loaded value with a doc comment's default text.
func sameDefault(v reflect.Value, text string) bool {
	if v.Type() == reflect.TypeOf(time.Duration(0)) {
		d, err := time.ParseDuration(text)
		return err == nil && time.Duration(v.Int()) == d
	}
	switch v.Kind() {
	case reflect.String:
		return v.String() == text
	case reflect.Bool:
		b, err := strconv.ParseBool(text)
		return err == nil && v.Bool() == b
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, ok := sizeOf(text)
		return ok && v.Int() == n
	case reflect.Uint32, reflect.Uint64:
		n, ok := sizeOf(text)
		return ok && int64(v.Uint()) == n
	case reflect.Float64:
		f, err := strconv.ParseFloat(text, 64)
		return err == nil && v.Float() == f
	case reflect.Slice:
		items := strings.Split(strings.Trim(text, "[]"), ", ")
		if v.Len() != len(items) {
			return false
		}
		for i, it := range items {
			if !sameDefault(v.Index(i), it) {
				return false
			}
		}
		return true
	}
	return false
}

// sizeOf parses "128", "8 KiB", "8 MiB", "1 GiB" or "256 bytes".
func sizeOf(text string) (int64, bool) {
	num, unit, _ := strings.Cut(text, " ")
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, false
	}
	mult := map[string]int64{"": 1, "bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[unit]
	return n * mult, mult != 0
}

func TestDefaultOfReadsTheDocConvention(t *testing.T) {
	for name, tc := range map[string]struct{ doc, want string }{
		"parenthesised":       {"Listen is host:port (default 127.0.0.1:9464).", "127.0.0.1:9464"},
		"with a clause":       {"Caps (default 128, at most 10000).", "128"},
		"with an explanation": {"Caps retries (default 100: during an outage).", "100"},
		"word before":         {"Where buckets live: memory (default) or redis.", "memory"},
		"word before, semi":   {"Read usage with tap (default; the tap filter) or inline.", "tap"},
		"list":                {"Algorithms allowed (default [RS256, ES256]); HMAC refused.", "[RS256, ES256]"},
		"quoted":              {`Prefix of keys (default "streamgate").`, "streamgate"},
		"colon form":          {"Name (default: Name).", "Name"},
		"none":                {"Address is host:port.", ""},
	} {
		t.Run(name, func(t *testing.T) {
			if got := defaultOf(tc.doc); got != tc.want {
				t.Errorf("defaultOf(%q) = %q, want %q", tc.doc, got, tc.want)
			}
		})
	}
}

func TestRefusalCodesMapToHTTPAndGRPC(t *testing.T) {
	for name, tc := range map[string]struct {
		status string
		want   int
		code   string
		rpc    string
	}{
		"429": {"http.StatusTooManyRequests", 429, "codes.ResourceExhausted", "RESOURCE_EXHAUSTED (8)"},
		"413": {"http.StatusRequestEntityTooLarge", 413, "codes.InvalidArgument", "INVALID_ARGUMENT (3)"},
		"401": {"http.StatusUnauthorized", 401, "codes.Unauthenticated", "UNAUTHENTICATED (16)"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := httpStatus(tc.status)
			if err != nil || got != tc.want {
				t.Errorf("httpStatus(%s) = %d, %v; want %d", tc.status, got, err, tc.want)
			}
			rpc, err := grpcCode(tc.code)
			if err != nil || rpc != tc.rpc {
				t.Errorf("grpcCode(%s) = %q, %v; want %q", tc.code, rpc, err, tc.rpc)
			}
		})
	}
	if _, err := httpStatus("http.StatusNoSuchThing"); err == nil {
		t.Error("an unknown status name was mapped")
	}
}

func TestRefusalRowWithoutWhenIsAnError(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join(root, "extproc", "refusal.go"))
	if err != nil {
		t.Fatal(err)
	}
	stripped := strings.Replace(string(src), "\t// when: the model is not a configured public model name.\n", "", 1)
	if stripped == string(src) {
		t.Fatal("the model_not_found row's when comment moved; update this test")
	}
	if err := os.MkdirAll(filepath.Join(dir, "extproc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "extproc", "refusal.go"), []byte(stripped), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = refusalRows(dir)
	if err == nil || !strings.Contains(err.Error(), "model_not_found") {
		t.Fatalf("a row without a when comment gave %v, want an error naming model_not_found", err)
	}
}

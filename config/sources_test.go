package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// loadSourcesConfig writes yml to a file and loads it.
func loadSourcesConfig(t *testing.T, yml string) *Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yml), 0o600))
	cfg, err := Load(path)
	require.NoError(t, err)
	return cfg
}

func TestCheckSources(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(secret, []byte("sk-test\n"), 0o600))
	blank := filepath.Join(dir, "blank")
	require.NoError(t, os.WriteFile(blank, []byte(" \n"), 0o600))
	unreadable := t.TempDir() // a directory: present but not readable as a file, even by root
	missing := filepath.Join(dir, "missing")
	const models = "models: [{name: m, backend: b}]\n"
	tests := map[string]struct {
		yml  string
		env  map[string]string
		want string // substring of the one problem; "" means none
		line int
	}{
		"credential env set": {
			yml: "backends:\n  - name: b\n    protocol: openai\n    endpoints: [\"127.0.0.1:8000\"]\n    credential: {header: authorization, env: SG_TEST_KEY}\n" + models,
			env: map[string]string{"SG_TEST_KEY": "sk-test"},
		},
		"credential env unset": {
			yml:  "backends:\n  - name: b\n    protocol: openai\n    endpoints: [\"127.0.0.1:8000\"]\n    credential: {header: authorization, env: SG_TEST_KEY}\n" + models,
			env:  map[string]string{"SG_TEST_KEY": ""},
			want: `backend "b": credential.env: environment variable SG_TEST_KEY is empty or unset`,
			line: 5,
		},
		"credential file present": {
			yml: "backends:\n  - name: b\n    protocol: openai\n    endpoints: [\"127.0.0.1:8000\"]\n    credential: {header: x-api-key, file: " + secret + "}\n" + models,
		},
		"credential file missing": {
			yml:  "backends:\n  - name: b\n    protocol: openai\n    endpoints: [\"127.0.0.1:8000\"]\n    credential: {header: x-api-key, file: " + missing + "}\n" + models,
			want: `backend "b": credential.file: file "` + missing + `" does not exist`,
			line: 5,
		},
		"credential file blank": {
			yml:  "backends:\n  - name: b\n    protocol: openai\n    endpoints: [\"127.0.0.1:8000\"]\n    credential: {header: x-api-key, file: " + blank + "}\n" + models,
			want: `credential.file: file "` + blank + `" is empty`,
			line: 5,
		},
		"credential file unreadable": {
			yml:  "backends:\n  - name: b\n    protocol: openai\n    endpoints: [\"127.0.0.1:8000\"]\n    credential: {header: x-api-key, file: " + unreadable + "}\n" + models,
			want: `credential.file: cannot read file "` + unreadable + `": is a directory`,
			line: 5,
		},
		"redis password env unset": {
			yml: "backends:\n  - name: b\n    protocol: openai\n    endpoints: [\"127.0.0.1:8000\"]\n" + models +
				"limits:\n  redis:\n    address: 127.0.0.1:6379\n    password_env: SG_TEST_REDIS_PW\n",
			env:  map[string]string{"SG_TEST_REDIS_PW": ""},
			want: "limits.redis.password_env: environment variable SG_TEST_REDIS_PW is empty or unset",
			line: 9,
		},
		"redis password env set": {
			yml: "backends:\n  - name: b\n    protocol: openai\n    endpoints: [\"127.0.0.1:8000\"]\n" + models +
				"limits:\n  redis:\n    address: 127.0.0.1:6379\n    password_env: SG_TEST_REDIS_PW\n",
			env: map[string]string{"SG_TEST_REDIS_PW": "pw"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cfg := loadSourcesConfig(t, tc.yml)
			err := cfg.CheckSources()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			ps := Problems(err)
			require.Len(t, ps, 1, "%v", err)
			assert.Contains(t, ps[0].Msg, tc.want)
			assert.Equal(t, cfg.Source, ps[0].File)
			assert.Equal(t, tc.line, ps[0].Line, "located at the field")
		})
	}
}

// TestCheckSourcesCAFileUnreadable: a ca_file that passes Load's existence
// check must also be readable.
func TestCheckSourcesCAFileUnreadable(t *testing.T) {
	ca := t.TempDir() // exists (Load's check passes) but is a directory
	cfg := loadSourcesConfig(t, "backends:\n  - name: b\n    protocol: openai\n    endpoints: [\"api.example.com:443\"]\n    tls: {ca_file: "+ca+"}\nmodels: [{name: m, backend: b}]\n")
	ps := Problems(cfg.CheckSources())
	require.Len(t, ps, 1)
	assert.Contains(t, ps[0].Msg, `backend "b": tls.ca_file: cannot read file`)
}

// TestCheckSourcesWithoutSourceFile: a config parsed from bytes still gets
// its problems, without a line.
func TestCheckSourcesWithoutSourceFile(t *testing.T) {
	t.Setenv("SG_TEST_KEY", "")
	cfg, err := Parse("inline.yaml", []byte("backends:\n  - {name: b, protocol: openai, endpoints: [\"127.0.0.1:8000\"], credential: {header: authorization, env: SG_TEST_KEY}}\nmodels: [{name: m, backend: b}]\n"))
	require.NoError(t, err)
	ps := Problems(cfg.CheckSources())
	require.Len(t, ps, 1)
	assert.Equal(t, 0, ps[0].Line)
	assert.Contains(t, ps[0].Msg, "SG_TEST_KEY")
}

func TestStartOnlyChecksNameReachability(t *testing.T) {
	cfg := loadSourcesConfig(t, "backends:\n  - {name: b, protocol: openai, endpoints: [\"127.0.0.1:8000\"]}\nmodels: [{name: m, backend: b}]\nlimits:\n  redis: {address: \"127.0.0.1:6379\"}\ntelemetry:\n  nats: {url: \"nats://127.0.0.1:4222\"}\n")
	got := cfg.StartOnlyChecks()
	assert.Contains(t, got, "limits.redis: 127.0.0.1:6379 is reachable and accepts the password")
	assert.Contains(t, got, "telemetry.nats.url: nats://127.0.0.1:4222 is reachable")
}

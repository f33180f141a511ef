package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const credentialConfig = `backends:
  - name: b
    protocol: openai
    endpoints: ["127.0.0.1:8000"]
    credential: {header: authorization, env: SG_CLI_TEST_KEY}
models: [{name: m, backend: b}]
limits:
  redis: {address: "127.0.0.1:6379"}
`

// TestValidateRefusesUnsetCredentialEnv: issue 24 item 3. A config whose
// backend credential env var is unset used to validate OK and then fail at
// `extproc` start; validate now exits non-zero naming the field's line.
func TestValidateRefusesUnsetCredentialEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(path, []byte(credentialConfig), 0o600))
	t.Setenv("SG_CLI_TEST_KEY", "")
	out, stderr, err := run(t, "validate", "-c", path)
	require.ErrorIs(t, err, ErrReported)
	assert.Empty(t, out)
	assert.Contains(t, stderr, path+`:5:`)
	assert.Contains(t, stderr, `backend "b": credential.env: environment variable SG_CLI_TEST_KEY is empty or unset`)
	assert.Contains(t, stderr, "1 problem(s) found")
}

// TestValidateOKListsStartOnlyChecks: with every source present validate
// prints OK, then what only a start can check (here Redis).
func TestValidateOKListsStartOnlyChecks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(path, []byte(credentialConfig), 0o600))
	t.Setenv("SG_CLI_TEST_KEY", "sk-test")
	out, _, err := run(t, "validate", "-c", path)
	require.NoError(t, err)
	assert.Contains(t, out, "OK: "+path)
	assert.Contains(t, out, "not checked (only a start can):")
	assert.Contains(t, out, "limits.redis: 127.0.0.1:6379 is reachable")
	assert.NotContains(t, out, "sk-test", "never print a secret")
}

// TestValidateRefusesMissingCredentialFile: a credential file that does not
// exist is a problem too.
func TestValidateRefusesMissingCredentialFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	missing := filepath.Join(dir, "nope")
	require.NoError(t, os.WriteFile(path, []byte(`backends:
  - {name: b, protocol: openai, endpoints: ["127.0.0.1:8000"], credential: {header: x-api-key, file: `+missing+`}}
models: [{name: m, backend: b}]
`), 0o600))
	_, stderr, err := run(t, "validate", "-c", path)
	require.ErrorIs(t, err, ErrReported)
	assert.Contains(t, stderr, `credential.file: file "`+missing+`" does not exist`)
}

package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := Main(t.Context(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestValidateOK(t *testing.T) {
	out, _, err := run(t, "validate", "-c", "../../../examples/streamgate.yaml")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(out, "OK: "), out)
}

// TestValidateReportsEachConfigError runs `streamgate validate` on every
// invalid config in config/testdata; each names its expected error.
func TestValidateReportsEachConfigError(t *testing.T) {
	files, err := filepath.Glob("../../../config/testdata/invalid/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			first, _, _ := strings.Cut(string(data), "\n")
			want := strings.TrimPrefix(first, "# want: ")
			out, stderr, err := run(t, "validate", "-c", f)
			require.ErrorIs(t, err, ErrReported, "validate must fail")
			assert.Empty(t, out)
			assert.Contains(t, stderr, want)
			assert.Contains(t, stderr, "problem(s) found")
		})
	}
}

func TestValidateMissingFile(t *testing.T) {
	_, _, err := run(t, "validate", "-c", "/nonexistent/streamgate.yaml")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot read config")
}

func TestUsageAndVersion(t *testing.T) {
	_, stderr, err := run(t)
	require.ErrorIs(t, err, ErrReported)
	assert.Contains(t, stderr, "streamgate run")

	_, stderr, err = run(t, "frobnicate")
	require.ErrorIs(t, err, ErrReported)
	assert.Contains(t, stderr, `unknown command "frobnicate"`)

	out, _, err := run(t, "version")
	require.NoError(t, err)
	assert.Equal(t, "streamgate dev\n", out)

	_, stderr, err = run(t, "validate", "-h")
	require.NoError(t, err, "-h prints help and succeeds")
	assert.Contains(t, stderr, "config file")
}

// TestValidateWarnsInsecureSkipVerify: the TLS opt-out is valid but named
// on stderr.
func TestValidateWarnsInsecureSkipVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`backends:
  - {name: b, protocol: openai, endpoints: ["vllm.internal:443"], tls: {insecure_skip_verify: true}}
models: [{name: m, backend: b}]
`), 0o600))
	out, stderr, err := run(t, "validate", "-c", path)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(out, "OK: "), out)
	assert.Contains(t, stderr, `warning: backend "b": tls.insecure_skip_verify is on`)
}

// TestValidateWarnsExposedControlPorts: issue 23 finding 9. A config whose
// ext_proc, xDS, metrics or Envoy admin listens beyond loopback validates,
// with one warning per listener; a loopback config gets none.
func TestValidateWarnsExposedControlPorts(t *testing.T) {
	src, err := os.ReadFile("../../../examples/streamgate.yaml")
	require.NoError(t, err)
	// The demo leaves extproc.listen to `streamgate run` (a unix socket).
	exposed := "extproc:\n  listen: 0.0.0.0:50051\n" + strings.NewReplacer("listen: 127.0.0.1:18001", `listen: "[::]:18001"`,
		"listen: 127.0.0.1:9464", "listen: 192.168.1.20:9464", "admin: 127.0.0.1:9901", "admin: 10.0.0.2:9901").Replace(string(src))
	for name, tc := range map[string]struct {
		cfg  string
		want []string
	}{
		"loopback": {cfg: string(src)},
		"exposed":  {cfg: exposed, want: []string{"$.extproc.listen: 0.0.0.0:50051", "$.xds.listen: [::]:18001", "$.metrics.listen: 192.168.1.20:9464", "$.envoy.admin: 10.0.0.2:9901"}},
	} {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "streamgate.yaml")
			require.NoError(t, os.WriteFile(f, []byte(tc.cfg), 0o600))
			out, stderr, err := run(t, "validate", "-c", f)
			require.NoError(t, err, stderr)
			assert.True(t, strings.HasPrefix(out, "OK: "), out)
			assert.Equal(t, len(tc.want), strings.Count(stderr, "warning: "), stderr)
			for _, w := range tc.want {
				assert.Contains(t, stderr, w)
			}
		})
	}
}

func TestBridgeNeedsABridgeSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "streamgate.yaml")
	require.NoError(t, os.WriteFile(path, []byte("backends: [{name: b, protocol: openai, endpoints: [\"127.0.0.1:1\"]}]\n"), 0o600))
	var out, errOut bytes.Buffer
	err := Main(context.Background(), []string{"bridge", "-c", path, "-metrics", "127.0.0.1:0"}, &out, &errOut)
	require.ErrorIs(t, err, errNoBridge)
}

// Package examples_test checks the deployment examples without the
// platforms they target: docker-compose.yaml loads with compose-go, the
// Kubernetes, Istio and Envoy Gateway manifests decode strictly into their
// typed API structs, and every Envoy config they carry passes a real
// `envoy --mode validate`.
package examples_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/cmd/streamgate/cli"
	"github.com/streamgate/streamgate/envoy"
)

// root is the repository root, relative to this package.
const root = ".."

// envoyBinary returns the Envoy the e2e tests use; without one the test is
// skipped, or fails under STREAMGATE_REQUIRE_ALL=1.
func envoyBinary(t *testing.T) string {
	t.Helper()
	abs, err := filepath.Abs(root)
	require.NoError(t, err)
	bin, err := envoy.Find(abs)
	if err != nil {
		if os.Getenv("STREAMGATE_REQUIRE_ALL") == "1" {
			t.Fatalf("Envoy is required (STREAMGATE_REQUIRE_ALL=1): %v", err)
		}
		t.Skipf("no Envoy: %v", err)
	}
	return bin
}

// envoyValidate runs `envoy --mode validate` on the config at path.
func envoyValidate(t *testing.T, path string) {
	t.Helper()
	cmd := exec.Command(envoyBinary(t), "--mode", "validate", "-c", path, "--log-level", "warning", "--disable-hot-restart")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "envoy --mode validate %s:\n%s", path, out)
	require.Contains(t, string(out), "OK", "envoy --mode validate %s", path)
}

// envoyValidateBytes writes cfg to a temporary file and validates it.
func envoyValidateBytes(t *testing.T, cfg []byte) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "envoy.yaml")
	require.NoError(t, os.WriteFile(p, cfg, 0o600))
	envoyValidate(t, p)
}

// streamgateValidate runs `streamgate validate -c path`.
func streamgateValidate(t *testing.T, path string) {
	t.Helper()
	var out, errs bytes.Buffer
	err := cli.Main(context.Background(), []string{"validate", "-c", path}, &out, &errs)
	require.NoError(t, err, "streamgate validate %s:\n%s", path, errs.String())
	require.Contains(t, out.String(), "OK")
}

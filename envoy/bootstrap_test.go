package envoy

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

var update = flag.Bool("update", false, "rewrite bootstrap.yaml from the template")

// TestBootstrapFile keeps envoy/bootstrap.yaml equal to the template rendered
// with the default ports (regenerate with -update).
func TestBootstrapFile(t *testing.T) {
	got, err := Bootstrap(BootstrapOptions{NodeID: config.DefaultNodeID, XDS: config.DefaultXDSListen, Admin: config.DefaultEnvoyAdmin})
	require.NoError(t, err)
	if *update {
		require.NoError(t, os.WriteFile("bootstrap.yaml", got, 0o644))
	}
	want, err := os.ReadFile("bootstrap.yaml")
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got))
	assert.Contains(t, string(got), "address: 127.0.0.1, port_value: 9901", "admin stays on loopback")
}

func TestBootstrapRejectsBadAddress(t *testing.T) {
	_, err := Bootstrap(BootstrapOptions{NodeID: "n", XDS: "nope", Admin: "127.0.0.1:1"})
	require.Error(t, err)
}

func TestFindPrefersEnvoyBin(t *testing.T) {
	dir := t.TempDir()
	bin := dir + "/envoy"
	require.NoError(t, os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755))
	t.Setenv("ENVOY_BIN", bin)
	got, err := Find(t.TempDir())
	require.NoError(t, err)
	assert.Equal(t, bin, got)

	t.Setenv("ENVOY_BIN", dir+"/missing")
	_, err = Find(dir)
	require.Error(t, err)
}

func TestFindVenvRawBinary(t *testing.T) {
	t.Setenv("ENVOY_BIN", "")
	t.Setenv("PATH", "")
	dir := t.TempDir()
	_, err := Find(dir)
	require.ErrorIs(t, err, ErrNotFound)
	raw := dir + "/.venv/lib/python3.11/site-packages/envoy/_bin"
	require.NoError(t, os.MkdirAll(raw, 0o755))
	require.NoError(t, os.WriteFile(raw+"/envoy", []byte("x"), 0o755))
	got, err := Find(dir)
	require.NoError(t, err)
	assert.Equal(t, raw+"/envoy", got)
}

// TestBootstrapOverloadManager: the bootstrap bounds Envoy's heap with the
// configured max_heap_bytes (fixed_heap monitor, stream resets, shrink,
// stop accepting) and Envoy accepts it.
func TestBootstrapOverloadManager(t *testing.T) {
	got, err := Bootstrap(BootstrapOptions{NodeID: "n", XDS: "127.0.0.1:1", Admin: "127.0.0.1:2", MaxHeapBytes: 512 << 20})
	require.NoError(t, err)
	for _, want := range []string{
		"envoy.resource_monitors.fixed_heap", "max_heap_size_bytes: 536870912",
		"envoy.overload_actions.reset_high_memory_stream", "minimum_account_to_track_power_of_two: 20",
		"envoy.overload_actions.shrink_heap", "envoy.overload_actions.stop_accepting_requests",
	} {
		assert.Contains(t, string(got), want)
	}
	wd, err := os.Getwd()
	require.NoError(t, err)
	bin, err := Find(filepath.Dir(wd))
	if err != nil {
		if os.Getenv("STREAMGATE_REQUIRE_ALL") == "1" {
			t.Fatalf("Envoy is required (STREAMGATE_REQUIRE_ALL=1): %v", err)
		}
		t.Skipf("no Envoy: %v", err)
	}
	path := filepath.Join(t.TempDir(), "bootstrap.yaml")
	require.NoError(t, os.WriteFile(path, got, 0o600))
	out, err := exec.Command(bin, "--mode", "validate", "-c", path, "--disable-hot-restart", "--log-level", "warning").CombinedOutput()
	require.NoError(t, err, "envoy --mode validate:\n%s", out)
	assert.Contains(t, string(out), "OK")
}

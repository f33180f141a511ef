package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// venvTool returns the venv's python and its console script name when the
// Python modules (a comma-separated import list) are installed; it skips
// (fails under STREAMGATE_REQUIRE_ALL=1) otherwise, naming the pins
// .ci/run installs.
func venvTool(t *testing.T, script, modules, pins string) (py, bin string) {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	dir := filepath.Join(filepath.Dir(wd), ".venv", "bin")
	py, bin = filepath.Join(dir, "python"), filepath.Join(dir, script)
	out, err := exec.Command(py, "-c", "import "+modules).CombinedOutput()
	if _, serr := os.Stat(bin); err != nil || serr != nil {
		msg := fmt.Sprintf("%s is needed in .venv (.ci/run installs %s): %v %v %s", script, pins, err, serr, out)
		if os.Getenv("STREAMGATE_REQUIRE_ALL") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return py, bin
}

// Placeholders in startVenvServer's arguments.
const (
	portArg = "{port}"
	dirArg  = "{dir}"
)

// startVenvServer runs bin with args ({port}: a free port, {dir}: a fresh
// data directory) until the test ends, and returns its address once
// ready(addr) holds; its output is logged if the test fails.
func startVenvServer(t *testing.T, name, bin string, args []string, ready func(addr string) bool) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	l.Close()
	dir := t.TempDir()
	argv := make([]string, len(args))
	for i, a := range args {
		switch a {
		case portArg:
			a = port
		case dirArg:
			a = dir
		}
		argv[i] = a
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, argv...)
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("---- %s logs ----\n%s", name, logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !ready(addr) {
		require.True(t, time.Now().Before(deadline), "%s did not start: %s", name, logs.String())
		time.Sleep(100 * time.Millisecond)
	}
	return addr
}

package envoy

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lockedBuffer is a bytes.Buffer safe for the copying goroutine and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestStartOutputSendsStdoutAccessLogToStdout: issue 24 item 3. An access
// log at /dev/stdout reaches the stdout writer, Envoy's own log the stderr
// one (under `streamgate run` it used to land on Streamgate's stderr).
func TestStartOutputSendsStdoutAccessLogToStdout(t *testing.T) {
	wd, err := os.Getwd()
	require.NoError(t, err)
	bin, err := Find(filepath.Dir(wd))
	if err != nil {
		if os.Getenv("STREAMGATE_REQUIRE_ALL") == "1" {
			t.Fatalf("Envoy is required (STREAMGATE_REQUIRE_ALL=1): %v", err)
		}
		t.Skipf("no Envoy: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	boot := fmt.Sprintf(`admin:
  address: {socket_address: {address: 127.0.0.1, port_value: %d}}
  access_log:
    - name: envoy.access_loggers.file
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
        path: /dev/stdout
        log_format: {text_format: "ACCESS %%REQ(:PATH)%%\n"}
`, port)
	path := filepath.Join(t.TempDir(), "bootstrap.yaml")
	require.NoError(t, os.WriteFile(path, []byte(boot), 0o600))
	var stdout, stderr lockedBuffer
	proc, err := StartOutput(t.Context(), bin, path, "info", &stdout, &stderr)
	require.NoError(t, err)
	t.Cleanup(func() { <-proc.Done() })
	url := fmt.Sprintf("http://127.0.0.1:%d/ready?probe=access-log", port)
	require.Eventually(t, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return strings.Contains(stdout.String(), "ACCESS /ready?probe=access-log")
	}, 15*time.Second, 100*time.Millisecond, "access line on stdout; stderr:\n%s", stderr.String())
	assert.NotContains(t, stderr.String(), "ACCESS ", "the access log stays off stderr")
	assert.NotEmpty(t, stderr.String(), "Envoy's own log (info) goes to stderr")
}

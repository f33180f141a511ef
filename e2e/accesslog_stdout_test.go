package e2e

import (
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAccessLogStdoutIsStreamgateStdout: issue 24 item 3. Under
// `streamgate run`, access_log: /dev/stdout (the default) lands on
// Streamgate's stdout, not its stderr as it used to; Streamgate's and
// Envoy's own logs stay on stderr.
func TestAccessLogStdoutIsStreamgateStdout(t *testing.T) {
	g := &env{logs: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan error, 1), backendA: gw.backendA, backendB: gw.backendB}
	err := g.start(defaultConfig)
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			t.Logf("---- stdout ----\n%s\n---- stderr ----\n%s", g.logs.String(), g.stderr.String())
		}
	})
	require.NoError(t, err)

	resp, err := postTo(t.Context(), g, chatBody("model-a", false, "hi"), nil)
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	id := resp.Header.Get("x-request-id")
	require.NotEmpty(t, id)

	line := accessLine(t, g, id) // searches stdout (g.logs)
	assert.Equal(t, "model-a", line["model"])
	for _, l := range strings.Split(g.stderr.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["request_id"] == id && m["msg"] == nil {
			t.Fatalf("access line on stderr: %s", l)
		}
	}
	assert.Contains(t, g.stderr.String(), `"msg":`, "Streamgate's own log is on stderr")
}

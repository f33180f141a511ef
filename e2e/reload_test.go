package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// oneBackendConfig serves only model-a; reload tests add and remove model-b.
const oneBackendConfig = listeners + `backends:
  - name: backend-a
    protocol: openai
    endpoints: [{{.BackendA}}]
models:
  - name: model-a
    backend: backend-a
`

// streamResult is what a background stream ended with.
type streamResult struct {
	pieces []string
	err    error
}

// longStream starts a stream on g and returns its result when it ends.
func longStream(t *testing.T, g *env, model string, tokens, itlMS int) <-chan streamResult {
	t.Helper()
	out := make(chan streamResult, 1)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, g.gateway+"/v1/chat/completions", strings.NewReader(string(chatBody(model, true, "long"))))
	require.NoError(t, err)
	req.Header.Set("x-fakellm-tokens", fmt.Sprint(tokens))
	req.Header.Set("x-fakellm-itl-ms", fmt.Sprint(itlMS))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	go func() {
		defer resp.Body.Close()
		pieces, err := readStream(resp.Body)
		out <- streamResult{pieces, err}
	}()
	return out
}

func status(g *env, model string) int {
	resp, err := http.Post(g.gateway+"/v1/chat/completions", "application/json", strings.NewReader(string(chatBody(model, false, "x"))))
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitStatus polls until model answers want, returning how long it took.
func waitStatus(t *testing.T, g *env, model string, want int, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if status(g, model) == want {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not answer %d within %v (last %d)", model, want, limit, status(g, model))
	return 0
}

func writeConfig(t *testing.T, g *env, content string) {
	t.Helper()
	tmp := g.configPath + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(t, os.Rename(tmp, g.configPath))
}

// TestHotReload: a 60-second stream survives three reloads; an added backend
// is routable within 2 s; an invalid edit changes nothing and is reported; a
// removed backend's open stream drains to its end.
func TestHotReload(t *testing.T) {
	if testing.Short() {
		t.Skip("60-second stream")
	}
	g := startGateway(t, oneBackendConfig)
	orig, err := os.ReadFile(g.configPath)
	require.NoError(t, err)
	const tokens, itl = 60, 1000
	long := longStream(t, g, "model-a", tokens, itl)
	require.Equal(t, http.StatusNotFound, status(g, "model-b"))

	// Reload 1: add backend-b and model-b.
	withB := strings.Replace(string(orig), "models:\n", fmt.Sprintf("  - name: backend-b\n    protocol: openai\n    endpoints: [%s]\nmodels:\n  - name: model-b\n    backend: backend-b\n", hostPort(g.backendB.url)), 1)
	writeConfig(t, g, withB)
	took := waitStatus(t, g, "model-b", http.StatusOK, 2*time.Second)
	t.Logf("added backend routable after %v", took)

	// An invalid edit: rejected, old config keeps serving, failure counted.
	writeConfig(t, g, strings.Replace(withB, "backend: backend-b", "backend: backend-zzz", 1))
	require.Eventually(t, func() bool { return strings.Contains(g.logs.String(), "config reload rejected") }, 5*time.Second, 20*time.Millisecond)
	assert.Contains(t, g.logs.String(), `points at backend \"backend-zzz\"`)
	assert.Equal(t, http.StatusOK, status(g, "model-b"), "the old config still serves")
	assert.Contains(t, scrape(t, g), `streamgate_config_reloads_total{result="failure"} 1`)

	// Reload 2: same content as reload 1 restored (forces a new apply).
	writeConfig(t, g, withB+"\n# touched\n")
	waitScrape(t, g, `streamgate_config_reloads_total{result="success"} 2`)

	// Reload 3: remove backend-b while a stream on it is open.
	drainee := longStream(t, g, "model-b", 5, 500)
	writeConfig(t, g, string(orig))
	waitStatus(t, g, "model-b", http.StatusNotFound, 2*time.Second)
	select {
	case r := <-drainee:
		require.NoError(t, r.err, "a removed backend's open stream must finish")
		assert.Equal(t, wantTokens(5), r.pieces)
	case <-time.After(10 * time.Second):
		t.Fatal("stream on the removed backend did not finish")
	}

	select {
	case r := <-long:
		require.NoError(t, r.err)
		assert.Equal(t, wantTokens(tokens), r.pieces, "the long stream lost or reordered chunks across reloads")
	case <-time.After(90 * time.Second):
		t.Fatal("long stream did not finish")
	}
	assert.Contains(t, scrape(t, g), `streamgate_config_reloads_total{result="success"} 3`)
}

// waitScrape waits until the gateway's /metrics holds line, failing after
// 10 s (the watcher polls the file every 500 ms).
func waitScrape(t *testing.T, g *env, line string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(scrape(t, g), line) {
		require.True(t, time.Now().Before(deadline), "no %q in /metrics within 10 s", line)
		time.Sleep(50 * time.Millisecond)
	}
}

func scrape(t *testing.T, g *env) string {
	t.Helper()
	resp, err := http.Get(g.metrics + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

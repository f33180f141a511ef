package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ragDemoConfig turns examples/rag/streamgate.yaml into a config template
// of the harness: the demo's fixed addresses become free ports, fakellm's
// the harness's backend, Chroma's the one the test started.
func ragDemoConfig(t *testing.T, chroma string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", "rag", "streamgate.yaml"))
	require.NoError(t, err)
	cfg := string(b)
	for from, to := range map[string]string{
		"listen: 127.0.0.1:10000": "listen: {{.Gateway}}",
		"listen: 127.0.0.1:18001": "listen: {{.XDS}}",
		"listen: 127.0.0.1:9464":  "listen: {{.Metrics}}",
		"admin: 127.0.0.1:9901":   "admin: {{.Admin}}",
		"[127.0.0.1:18080]":       "[{{.BackendA}}]",
		"[127.0.0.1:18000]":       "[" + chroma + "]",
	} {
		require.Contains(t, cfg, from, "examples/rag/streamgate.yaml changed: update ragDemoConfig")
		cfg = strings.ReplaceAll(cfg, from, to)
	}
	return cfg
}

// TestRAGDemo runs the retrieval demo's script (examples/rag/rag.py, what
// `make demo-rag` runs) against its config with real Envoy, fakellm and
// Chroma: embeddings, Chroma add and query, and a chat completion with
// the retrieved passage, all through the gateway with one key.
func TestRAGDemo(t *testing.T) {
	py, chroma := chromaPython(t)
	addr := startChroma(t, chroma)
	g := startGateway(t, ragDemoConfig(t, addr))

	cmd := exec.CommandContext(t.Context(), py, filepath.Join("..", "examples", "rag", "rag.py"), g.gateway, "sk-demo-rag-0f3a9c", "--json")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	require.NoError(t, err, "rag.py failed:\n%s", stderr.String())
	var out struct {
		EmbeddingModel string `json:"embedding_model"`
		Dimensions     int
		Count          int
		Retrieved      string
		Passages       []string
		Answer         string
		WithContext    int `json:"prompt_tokens_with_context"`
		Without        int `json:"prompt_tokens_without"`
	}
	require.NoError(t, json.Unmarshal(stdout, &out), "rag.py printed %s", stdout)
	assert.NotEmpty(t, out.EmbeddingModel)
	assert.Equal(t, 8, out.Dimensions)
	assert.Equal(t, 3, out.Count)
	assert.Contains(t, out.Passages, out.Retrieved)
	assert.NotEmpty(t, out.Answer)
	assert.Greater(t, out.WithContext, out.Without, "the retrieved passage went into the prompt")

	// One key, one tenant: the model and the service requests are both its.
	waitLogLine(t, g, func(l map[string]any) bool {
		return l["service"] == "chroma" && l["tenant"] == "demo" && l["status"] == 201.0
	})
	waitLogLine(t, g, func(l map[string]any) bool {
		return l["endpoint"] == "/v1/embeddings" && l["tenant"] == "demo" && l["status"] == 200.0
	})
	waitLogLine(t, g, func(l map[string]any) bool {
		return l["endpoint"] == "/v1/chat/completions" && l["tenant"] == "demo" && l["status"] == 200.0
	})
}

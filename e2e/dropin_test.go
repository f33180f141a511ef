package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/streamgate/streamgate/cmd/streamgate/cli"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/envoy"
)

// TestDropIn runs the hand-written "existing" Envoy config of
// envoy/dropin/example-envoy.yaml, with Streamgate's snippets pasted in,
// against separate `streamgate xds --drop-in` and `streamgate extproc`.
func TestDropIn(t *testing.T) {
	ports, err := freePorts(6)
	require.NoError(t, err)
	edge, extProc, xdsAddr, admin, metricsX, metricsE := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	dir := t.TempDir()
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- drop-in logs ----\n%s", logs.String())
		}
	})

	// The same config for both processes, apart from the metrics port.
	write := func(name, metrics string) string {
		var b bytes.Buffer
		require.NoError(t, template.Must(template.New("c").Parse(dropInConfig)).Execute(&b, Ports{
			Gateway: edge, ExtProc: extProc, XDS: xdsAddr, Admin: admin, Metrics: metrics,
			BackendA: hostPort(gw.backendA.url), BackendB: hostPort(gw.backendB.url),
		}))
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b.Bytes(), 0o600))
		return p
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	xdsCfg, extProcCfg := write("xds.yaml", metricsX), write("extproc.yaml", metricsE)
	go func() { done <- cli.Main(ctx, []string{"xds", "--drop-in", "-c", xdsCfg}, logs, logs) }()
	go func() { done <- cli.Main(ctx, []string{"extproc", "-c", extProcCfg}, logs, logs) }()
	t.Cleanup(func() { cancel(); <-done; <-done })

	example, err := os.ReadFile("../envoy/dropin/example-envoy.yaml")
	require.NoError(t, err)
	cfg := strings.NewReplacer(
		"port_value: 9901", "port_value: "+port(admin),
		"port_value: 10000", "port_value: "+port(edge),
		"port_value: 50051", "port_value: "+port(extProc),
		"port_value: 18001", "port_value: "+port(xdsAddr),
	).Replace(string(example))
	envoyCfg := filepath.Join(dir, "envoy.yaml")
	require.NoError(t, os.WriteFile(envoyCfg, []byte(cfg), 0o600))
	proc, err := envoy.Start(ctx, os.Getenv("ENVOY_BIN"), envoyCfg, "warning", logs)
	require.NoError(t, err)
	t.Cleanup(func() { cancel(); <-proc.Done() })

	base := "http://" + edge
	require.Eventually(t, func() bool {
		resp, err := http.Post(base+"/v1/chat/completions", "application/json", bytes.NewReader(chatBody("model-b", false, "x")))
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond, "edge Envoy never routed to a Streamgate model cluster")

	// The operator's own route still works.
	resp, err := http.Get(base + "/healthz")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "edge ok", string(body))

	// Both models stream through, each to its backend, with the upstream name rewritten.
	for model, want := range map[string][2]string{"model-a": {"backend-a", "upstream-a"}, "model-b": {"backend-b", "model-b"}} {
		resp, err := http.Post(base+"/v1/chat/completions", "application/json", bytes.NewReader(chatBody(model, true, "hi")))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, want[0], resp.Header.Get("x-fakellm-backend"))
		assert.Equal(t, want[1], resp.Header.Get("x-fakellm-received-model"))
		assert.Equal(t, "default", resp.Header.Get("x-streamgate-model-version"))
		pieces, err := readStream(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.Equal(t, wantTokens(16), pieces)
	}
	resp, err = http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"nope"}`))
	require.NoError(t, err)
	requireOpenAIError(t, resp, 404, "model_not_found")

	// A model with fallbacks routes to the failover cluster the drop-in
	// xDS server publishes; route.yaml's retry policy moves a request its
	// primary fails before the first byte down the chain.
	for _, fail := range []string{"", "503", "429", "disconnect"} {
		req, err := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", bytes.NewReader(chatBody("model-fo", true, "hi")))
		require.NoError(t, err)
		want := "backend-a"
		if fail != "" {
			req.Header.Set("x-fakellm-fail", fail)
			req.Header.Set("x-fakellm-fail-backend", "backend-a")
			want = "backend-b"
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "primary answering %q", fail)
		assert.Equal(t, want, resp.Header.Get("x-fakellm-backend"), "primary answering %q", fail)
		assert.Equal(t, "upstream-fo", resp.Header.Get("x-fakellm-received-model"))
		pieces, err := readStream(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.Equal(t, wantTokens(16), pieces)
	}

	// A chain mixing protocols: the Chat Completions request the primary
	// fails goes to claude-b as Anthropic Messages (its upstream filter
	// reaching ext_proc through the streamgate_extproc cluster) and its
	// answer comes back translated, which needs route.yaml to name the
	// backend that answered.
	for _, stream := range []bool{false, true} {
		req, err := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", bytes.NewReader(chatBody("model-xp", stream, "hi")))
		require.NoError(t, err)
		req.Header.Set("x-fakellm-fail", "500")
		req.Header.Set("x-fakellm-fail-backend", "backend-a")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "backend-b", resp.Header.Get("x-fakellm-backend"))
		assert.Equal(t, "upstream-xp", resp.Header.Get("x-fakellm-received-model"))
		assert.Empty(t, resp.Header.Get(contract.AnsweredByHeader), "the backend's name stays inside")
		if stream {
			pieces, err := readStream(resp.Body)
			require.NoError(t, err, "an OpenAI stream, translated from Anthropic's events")
			assert.NotEmpty(t, pieces)
		} else {
			body, _ := io.ReadAll(resp.Body)
			assert.Equal(t, "chat.completion", gjson.GetBytes(body, "object").Str, "%s", body)
		}
		resp.Body.Close()
	}

	// Drop-in publishes only the model clusters: one per backend and one
	// per failover chain.
	dyn := dynamicClusters(t, "http://"+admin)
	assert.Equal(t, []string{"backend-a", "backend-b", "claude-b", contract.FailoverCluster([]string{"backend-a", "backend-b"}),
		contract.FailoverCluster([]string{"backend-a", "claude-b"})}, dyn)
}

// dropInConfig is defaultConfig with a model whose primary backend-a fails
// over to backend-b, and one (model-xp) whose primary backend-a fails over
// to claude-b, backend-b's Anthropic Messages API: a chain mixing
// protocols.
var dropInConfig = strings.Replace(strings.Replace(defaultConfig, "telemetry:", `  - name: model-fo
    backend: backend-a
    upstream_model: upstream-fo
    fallbacks: [backend-b]
  - name: model-xp
    backend: backend-a
    upstream_model: upstream-xp
    fallbacks: [claude-b]
telemetry:`, 1), "models:\n", `  - name: claude-b
    protocol: anthropic
    endpoints: [{{.BackendB}}]
models:
`, 1)

// TestConfigDumpHasNothingStray: the all-in-one gateway's Envoy holds the
// configured backends and Streamgate's own clusters, and one listener.
func TestConfigDumpHasNothingStray(t *testing.T) {
	assert.Equal(t, []string{"backend-a", "backend-b", "streamgate_extproc", "streamgate_unrouted"}, dynamicClusters(t, gw.admin))
	assert.Equal(t, []string{"streamgate_gateway"}, dynamicListeners(t, gw.admin))
}

func port(hostPort string) string {
	return hostPort[strings.LastIndex(hostPort, ":")+1:]
}

func configDump(t *testing.T, admin, resource string) []map[string]any {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/config_dump?resource=%s", admin, resource))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		Configs []map[string]any `json:"configs"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out.Configs
}

func dynamicClusters(t *testing.T, admin string) []string {
	var names []string
	for _, c := range configDump(t, admin, "dynamic_active_clusters") {
		names = append(names, c["cluster"].(map[string]any)["name"].(string))
	}
	slices.Sort(names)
	return names
}

func dynamicListeners(t *testing.T, admin string) []string {
	var names []string
	for _, c := range configDump(t, admin, "dynamic_listeners") {
		names = append(names, c["name"].(string))
	}
	slices.Sort(names)
	return names
}

package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDrainTimeoutReloadsLive runs the real binary with a 60 s drain
// timeout, reloads the config to 1 s, opens a 10-second stream and sends
// SIGTERM: the process exits at the reloaded deadline, cutting the stream,
// instead of waiting for it under the timeout it started with.
func TestDrainTimeoutReloadsLive(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "streamgate")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/streamgate").CombinedOutput()
	require.NoError(t, err, "cannot build streamgate: %s", out)

	ports, err := freePorts(5)
	require.NoError(t, err)
	p := Ports{Gateway: ports[0], ExtProc: ports[1], XDS: ports[2], Admin: ports[3], Metrics: ports[4],
		BackendA: hostPort(gw.backendA.url), BackendB: hostPort(gw.backendB.url)}
	tmpl := strings.Replace(defaultConfig, "gateway:\n", "gateway:\n  drain_timeout: 60s\n", 1)
	var cfg bytes.Buffer
	require.NoError(t, template.Must(template.New("c").Parse(tmpl)).Execute(&cfg, p))
	cfgPath := filepath.Join(dir, "streamgate.yaml")
	require.NoError(t, os.WriteFile(cfgPath, cfg.Bytes(), 0o600))

	logs := &syncBuffer{}
	cmd := exec.Command(bin, "run", "-c", cfgPath)
	cmd.Dir = ".."
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("---- streamgate logs ----\n%s", logs.String())
		}
	})
	e := &env{gateway: "http://" + p.Gateway, metrics: "http://" + p.Metrics, configPath: cfgPath, done: make(chan error, 1)}
	require.NoError(t, e.waitReady(30*time.Second))

	writeConfig(t, e, strings.Replace(cfg.String(), "drain_timeout: 60s", "drain_timeout: 1s", 1))
	waitScrape(t, e, `streamgate_config_reloads_total{result="success"} 1`)
	assert.NotContains(t, logs.String(), "gateway.drain_timeout changed but keeps its old value")

	req, err := http.NewRequest(http.MethodPost, e.gateway+"/v1/chat/completions", bytes.NewReader(chatBody("model-a", true, "drain")))
	require.NoError(t, err)
	req.Header.Set("content-type", "application/json")
	req.Header.Set("x-fakellm-tokens", "100")
	req.Header.Set("x-fakellm-itl-ms", "100") // ~10 s
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	first := make([]byte, 1)
	_, err = io.ReadFull(resp.Body, first)
	require.NoError(t, err)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}()

	sigterm := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err, "streamgate exit status")
	case <-time.After(8 * time.Second):
		t.Fatal("streamgate did not exit at the reloaded 1 s drain timeout")
	}
	took := time.Since(sigterm)
	t.Logf("SIGTERM to exit: %s", took.Round(time.Millisecond))
	assert.Contains(t, logs.String(), "drain timeout passed; closing open requests", "the stream was cut at the deadline")
	assert.Contains(t, logs.String(), `"timeout":"1s"`)
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end after the gateway exited")
	}
}

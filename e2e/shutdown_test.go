package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGracefulShutdown runs the real binary (`streamgate run` with its own
// Envoy), opens 20 slow streams, sends the process SIGTERM and checks that
// /readyz turns 503, that a new request is refused with a 503 OpenAI error,
// that all 20 streams complete, and that the process exits well within the
// drain timeout.
func TestGracefulShutdown(t *testing.T) {
	const (
		streams      = 20
		tokens       = 30
		itl          = 100 * time.Millisecond // ~3 s per stream
		drainTimeout = 20 * time.Second
	)
	dir := t.TempDir()
	bin := filepath.Join(dir, "streamgate")
	build := exec.Command("go", "build", "-o", bin, "../cmd/streamgate")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "cannot build streamgate: %s", out)

	ports, err := freePorts(5)
	require.NoError(t, err)
	p := Ports{Gateway: ports[0], ExtProc: ports[1], XDS: ports[2], Admin: ports[3], Metrics: ports[4],
		BackendA: hostPort(gw.backendA.url), BackendB: hostPort(gw.backendB.url)}
	tmpl := strings.Replace(defaultConfig, "gateway:\n", "gateway:\n  drain_timeout: "+drainTimeout.String()+"\n", 1)
	var cfg bytes.Buffer
	require.NoError(t, template.Must(template.New("c").Parse(tmpl)).Execute(&cfg, p))
	cfgPath := filepath.Join(dir, "streamgate.yaml")
	require.NoError(t, os.WriteFile(cfgPath, cfg.Bytes(), 0o600))

	logs := &syncBuffer{}
	cmd := exec.Command(bin, "run", "-c", cfgPath)
	cmd.Dir = ".." // finds .venv's Envoy like a user in the repo root would (ENVOY_BIN is set too)
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
	e := &env{gateway: "http://" + p.Gateway, done: make(chan error, 1)}
	require.NoError(t, e.waitReady(30*time.Second))
	metrics := "http://" + p.Metrics

	// Open the streams and wait for each one's first token.
	var wg sync.WaitGroup
	started := make(chan struct{}, streams)
	type result struct {
		tokens int
		done   bool
		err    error
		end    time.Time
	}
	results := make([]result, streams)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = func() (r result) {
				defer func() { r.end = time.Now() }()
				req, _ := http.NewRequest(http.MethodPost, e.gateway+"/v1/chat/completions", bytes.NewReader(chatBody("model-a", true, "drain")))
				req.Header.Set("content-type", "application/json")
				req.Header.Set("x-fakellm-tokens", "30")
				req.Header.Set("x-fakellm-itl-ms", "100")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return result{err: err}
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return result{err: errors.New(resp.Status)}
				}
				sse := newSSEReader(resp.Body)
				for first := true; ; {
					data, err := sse.next()
					if err != nil {
						return result{tokens: r.tokens, err: err}
					}
					if data == "[DONE]" {
						r.done = true
						return r
					}
					var c chunk
					if err := json.Unmarshal([]byte(data), &c); err != nil {
						return result{err: err}
					}
					if len(c.Choices) > 0 && c.Choices[0].Delta.Content != "" {
						r.tokens++
						if first {
							first = false
							started <- struct{}{}
						}
					}
				}
			}()
		}()
	}
	for range streams {
		select {
		case <-started:
		case <-time.After(20 * time.Second):
			t.Fatal("streams did not start")
		}
	}

	sigterm := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))

	// /readyz turns 503 as soon as new requests are refused.
	require.Eventually(t, func() bool {
		resp, err := http.Get(metrics + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	}, 5*time.Second, 20*time.Millisecond, "/readyz never turned 503")

	// A new request on a new connection gets a clean 503 OpenAI error.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := fresh.Post(e.gateway+"/v1/chat/completions", "application/json", bytes.NewReader(chatBody("model-a", true, "late")))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "body: %s", body)
	assert.Equal(t, "application/json", resp.Header.Get("content-type"))
	var oe struct {
		Error struct{ Message, Type, Code string } `json:"error"`
	}
	require.NoError(t, json.Unmarshal(body, &oe), "body: %s", body)
	assert.Equal(t, "service_unavailable", oe.Error.Code)
	assert.Equal(t, "server_error", oe.Error.Type)
	assert.NotEmpty(t, oe.Error.Message)

	wg.Wait()
	var lastEnd time.Time
	for i, r := range results {
		require.NoError(t, r.err, "stream %d", i)
		assert.True(t, r.done, "stream %d ended without [DONE]", i)
		assert.Equal(t, tokens, r.tokens, "stream %d", i)
		if r.end.After(lastEnd) {
			lastEnd = r.end
		}
	}
	// The streams really were in flight across the signal.
	assert.Greater(t, lastEnd.Sub(sigterm), time.Second, "streams finished too soon after SIGTERM to show a drain")

	select {
	case err := <-exited:
		require.NoError(t, err, "streamgate exit status")
	case <-time.After(drainTimeout + 10*time.Second):
		t.Fatal("streamgate did not exit within the drain timeout")
	}
	took := time.Since(sigterm)
	t.Logf("SIGTERM to exit: %s (last stream ended %s after SIGTERM)", took.Round(time.Millisecond), lastEnd.Sub(sigterm).Round(time.Millisecond))
	assert.Less(t, took, drainTimeout, "the drain should end when the streams do, not at the deadline")
	assert.Contains(t, logs.String(), `"msg":"drained"`)
	assert.NotContains(t, logs.String(), "cannot drain envoy", "Envoy's admin accepted the drain")
	assert.NotContains(t, logs.String(), "cannot fail envoy", "Envoy's admin accepted the health check failure")
	assert.NotContains(t, logs.String(), "cannot count envoy", "Envoy's stats were read")
	// Envoy is gone too: nothing answers on the gateway port.
	_, err = fresh.Get(e.gateway + "/v1/models")
	assert.Error(t, err, "envoy still serving after streamgate exited")
}

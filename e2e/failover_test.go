package e2e

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakellm"
)

// failoverConfig: model fo is served by a primary the test can kill, with
// backend-b as its fallback. The primary is health-checked.
const failoverConfig = listeners + `backends:
  - name: primary
    protocol: openai
    endpoints: [PRIMARY]
    health_check: {interval: 1s, timeout: 500ms}
  - name: backend-b
    protocol: openai
    endpoints: [{{.BackendB}}]
models:
  - name: fo
    backend: primary
    upstream_model: fo-upstream
    fallbacks: [backend-b]
`

// killable is a fakellm server that can be shut down mid-test.
type killable struct {
	*fakellm.Server
	srv  *http.Server
	addr string
}

func startKillable(t *testing.T, name string) *killable {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	k := &killable{Server: fakellm.New(fakellm.Options{Name: name}), addr: lis.Addr().String()}
	k.srv = &http.Server{Handler: k.Server}
	go func() { _ = k.srv.Serve(lis) }()
	t.Cleanup(func() { k.srv.Close() })
	return k
}

func foRequest(t *testing.T, g *env, stream bool, headers map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, g.gateway+"/v1/chat/completions", strings.NewReader(string(chatBody("fo", stream, "x"))))
	require.NoError(t, err)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}

func TestFailoverBeforeFirstByte(t *testing.T) {
	primary := startKillable(t, "primary")
	g := startGateway(t, strings.Replace(failoverConfig, "PRIMARY", primary.addr, 1))

	resp := foRequest(t, g, false, nil)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "primary", resp.Header.Get("x-fakellm-backend"), "healthy primary serves")

	for _, code := range []string{"500", "503", "429", "disconnect"} {
		t.Run("primary answers "+code, func(t *testing.T) {
			resp := foRequest(t, g, true, map[string]string{"x-fakellm-fail": code, "x-fakellm-fail-backend": "primary"})
			defer resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, "backend-b", resp.Header.Get("x-fakellm-backend"))
			assert.Equal(t, "fo-upstream", resp.Header.Get("x-fakellm-received-model"), "fallbacks get the version's upstream model")
			pieces, err := readStream(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, wantTokens(16), pieces)
		})
	}
}

// TestFailoverWhenBackendDies kills the primary while requests flow: no
// client sees a failure, and later requests go to the fallback.
func TestFailoverWhenBackendDies(t *testing.T) {
	primary := startKillable(t, "primary")
	g := startGateway(t, strings.Replace(failoverConfig, "PRIMARY", primary.addr, 1))
	const total = 300
	var failures, onB atomic.Int64
	var sent atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sent.Add(1) <= total {
				resp, err := http.Post(g.gateway+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"fo","max_tokens":2,"messages":[]}`))
				if err != nil {
					failures.Add(1)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					if failures.Add(1) == 1 {
						t.Logf("first failure: %d %s", resp.StatusCode, body)
					}
				}
				if resp.Header.Get("x-fakellm-backend") == "backend-b" {
					onB.Add(1)
				}
			}
		}()
	}
	for sent.Load() < total/3 {
		time.Sleep(time.Millisecond)
	}
	primary.srv.Close()
	wg.Wait()
	t.Logf("%d of %d requests served by the fallback after the primary died", onB.Load(), total)
	if failures.Load() > 0 {
		resp, err := http.Get(g.admin + "/stats?filter=failover.*(retry|overflow)")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Logf("envoy stats:\n%s", b)
		}
	}
	assert.Zero(t, failures.Load(), "client-visible failures")
	assert.Greater(t, onB.Load(), int64(total/3))
}

// TestStreamCutAfterFirstByteIsNotSpliced: once tokens have flowed, a dying
// backend ends the client's stream with an error; nothing from another
// backend is spliced in.
func TestStreamCutAfterFirstByteIsNotSpliced(t *testing.T) {
	primary := startKillable(t, "primary")
	g := startGateway(t, strings.Replace(failoverConfig, "PRIMARY", primary.addr, 1))
	// Envoy holds the response headers until ext_proc has seen them
	// (telemetry reads every response): a cut before that ends as a 502.
	// Tokens 5 ms apart let the headers reach the client first.
	resp := foRequest(t, g, true, map[string]string{"x-fakellm-fail": "midstream", "x-fakellm-tokens": "10", "x-fakellm-fail-backend": "primary", "x-fakellm-itl-ms": "5"})
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "primary", resp.Header.Get("x-fakellm-backend"))
	pieces, err := readStream(resp.Body)
	require.Error(t, err, "the client must see the stream fail, not end cleanly")
	require.NotEmpty(t, pieces)
	assert.Equal(t, wantTokens(len(pieces)), pieces, "only the primary's tokens, in order")
	assert.Less(t, len(pieces), 10)
}

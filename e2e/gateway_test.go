package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStreamingIsIncremental checks that the first chunk reaches the client
// while the backend is still generating: Envoy and ext_proc must not buffer.
func TestStreamingIsIncremental(t *testing.T) {
	const tokens, itl = 10, 100 // ms between tokens: the stream lasts ~1 s
	before := gw.backendA.Stats().Completed
	start := time.Now()
	resp := post(t, t.Context(), "/v1/chat/completions", chatBody("model-a", true, "hi"), map[string]string{
		"x-fakellm-tokens": fmt.Sprint(tokens), "x-fakellm-itl-ms": fmt.Sprint(itl),
	})
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("content-type"), "text/event-stream")
	sr := newSSEReader(resp.Body)
	_, err := sr.next()
	require.NoError(t, err)
	first := time.Since(start)
	assert.Equal(t, before, gw.backendA.Stats().Completed, "backend finished before the client saw its first chunk")
	pieces, err := readStream(resp.Body)
	_ = pieces
	total := time.Since(start)
	require.NoError(t, err)
	t.Logf("first chunk after %v, stream done after %v", first, total)
	assert.Less(t, first, total/3, "first chunk must arrive well before the end of the stream")
	assert.GreaterOrEqual(t, total, time.Duration(tokens-1)*itl*time.Millisecond)
}

func TestNonStreamingIsByteIdentical(t *testing.T) {
	resp := post(t, t.Context(), "/v1/chat/completions", chatBody("model-b", false, "hello"), map[string]string{"x-e2e-tap": "nonstream"})
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	sent := gw.backendB.tap.bytes("nonstream")
	require.NotEmpty(t, sent)
	assert.Equal(t, string(sent), string(got))
	assert.Equal(t, "backend-b", resp.Header.Get("x-fakellm-backend"))
}

func TestModelsRouteToTheirBackends(t *testing.T) {
	for name, tc := range map[string]struct{ model, backend, upstream string }{
		"model-a goes to backend-a with its upstream name": {"model-a", "backend-a", "upstream-a"},
		"model-b goes to backend-b unchanged":              {"model-b", "backend-b", "model-b"},
	} {
		t.Run(name, func(t *testing.T) {
			resp := post(t, t.Context(), "/v1/chat/completions", chatBody(tc.model, false, "x"), nil)
			defer resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, tc.backend, resp.Header.Get("x-fakellm-backend"))
			assert.Equal(t, tc.upstream, resp.Header.Get("x-fakellm-received-model"))
			var out struct{ Model string }
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
			assert.Equal(t, tc.upstream, out.Model)
		})
	}
}

func TestClientCannotPickBackendByHeader(t *testing.T) {
	resp := post(t, t.Context(), "/v1/chat/completions", chatBody("model-a", false, "x"), map[string]string{"x-streamgate-backend": "backend-b"})
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "backend-a", resp.Header.Get("x-fakellm-backend"))
}

func TestErrorsHaveOpenAIShape(t *testing.T) {
	for name, tc := range map[string]struct {
		path, body string
		status     int
		code       string
	}{
		"unknown model":        {"/v1/chat/completions", `{"model":"nope","messages":[]}`, 404, "model_not_found"},
		"malformed JSON":       {"/v1/chat/completions", `{"model":"model-a",`, 400, "invalid_request"},
		"not an object":        {"/v1/chat/completions", `[1,2]`, 400, "invalid_request"},
		"missing model":        {"/v1/chat/completions", `{"messages":[]}`, 400, "invalid_request"},
		"duplicate model key":  {"/v1/chat/completions", `{"model":"model-a","model":"model-b"}`, 400, "invalid_request"},
		"unknown path":         {"/v1/nothing", `{}`, 404, "unknown_url"},
		"completions, unknown": {"/v1/completions", `{"model":"nope","prompt":"x"}`, 404, "model_not_found"},
	} {
		t.Run(name, func(t *testing.T) {
			resp := post(t, t.Context(), tc.path, []byte(tc.body), nil)
			requireOpenAIError(t, resp, tc.status, tc.code)
		})
	}
}

func TestBodyTooLarge(t *testing.T) {
	big := chatBody("model-a", false, strings.Repeat("x", 9<<20))
	t.Run("with content-length", func(t *testing.T) {
		resp := post(t, t.Context(), "/v1/chat/completions", big, nil)
		requireOpenAIError(t, resp, http.StatusRequestEntityTooLarge, "request_too_large")
	})
	t.Run("chunked", func(t *testing.T) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, gw.gateway+"/v1/chat/completions", io.NopCloser(strings.NewReader(string(big))))
		require.NoError(t, err)
		req.ContentLength = -1
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		requireOpenAIError(t, resp, http.StatusRequestEntityTooLarge, "request_too_large")
	})
}

// TestLargePromptsPass sends prompts well above Envoy's default 1 MiB buffer
// and gRPC's default 4 MiB message size.
func TestLargePromptsPass(t *testing.T) {
	for _, size := range []int{1 << 20, 6 << 20} {
		t.Run(fmt.Sprintf("%d bytes", size), func(t *testing.T) {
			body := chatBody("model-a", true, strings.Repeat("y", size))
			resp := post(t, t.Context(), "/v1/chat/completions", body, nil)
			defer resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			pieces, err := readStream(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, wantTokens(16), pieces)
			// The model was rewritten and usage asked for (telemetry reads
			// it), so the body changed by that much only.
			usage := len(`,"stream_options":{"include_usage":true}`)
			assert.InDelta(t, len(body)+len("upstream-a")-len("model-a")+usage, gw.backendA.Stats().LastBodyBytes, 0)
		})
	}
}

func TestConcurrentStreams(t *testing.T) {
	const streams, tokens = 200, 20
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			model := []string{"model-a", "model-b"}[i%2]
			resp := post(t, t.Context(), "/v1/chat/completions", chatBody(model, true, "c"), map[string]string{
				"x-fakellm-tokens": fmt.Sprint(tokens), "x-fakellm-itl-ms": "5",
			})
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("stream %d: status %d", i, resp.StatusCode)
				return
			}
			pieces, err := readStream(resp.Body)
			if err != nil {
				errs <- fmt.Errorf("stream %d: %w", i, err)
				return
			}
			if strings.Join(pieces, "") != strings.Join(wantTokens(tokens), "") {
				errs <- fmt.Errorf("stream %d: chunks out of order or missing: %q", i, pieces)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestClientDisconnectCancelsBackend: when the client goes away mid-stream,
// the backend must see its request cancelled within a second.
func TestClientDisconnectCancelsBackend(t *testing.T) {
	drain(gw.backendA.CancelledCh())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	resp := post(t, ctx, "/v1/chat/completions", chatBody("model-a", true, "long"), map[string]string{
		"x-fakellm-tokens": "100", "x-fakellm-itl-ms": "100",
	})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	_, err := newSSEReader(resp.Body).next()
	require.NoError(t, err)
	cancelled := time.Now()
	cancel()
	resp.Body.Close()
	select {
	case <-gw.backendA.CancelledCh():
		t.Logf("backend saw the cancel %v after the client left", time.Since(cancelled))
	case <-time.After(time.Second):
		t.Fatal("backend did not see the client's disconnect within 1s")
	}
}

func TestModelsListedByGateway(t *testing.T) {
	resp, err := http.Get(gw.gateway + "/v1/models")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out struct {
		Object string
		Data   []struct{ ID string }
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	assert.Equal(t, "list", out.Object)
	var ids []string
	for _, d := range out.Data {
		ids = append(ids, d.ID)
	}
	assert.Equal(t, []string{"model-a", "model-b"}, ids)
}

func drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// TestConfiguredBodyCap runs a second gateway with a 4 KiB body cap.
func TestConfiguredBodyCap(t *testing.T) {
	small := startGateway(t, strings.Replace(defaultConfig, "gateway:\n", "gateway:\n  max_request_body_bytes: 4096\n", 1))
	for name, size := range map[string]int{"under the cap": 1000, "over the cap": 5000} {
		t.Run(name, func(t *testing.T) {
			body := chatBody("model-b", false, strings.Repeat("z", size))
			resp, err := http.Post(small.gateway+"/v1/chat/completions", "application/json", strings.NewReader(string(body)))
			require.NoError(t, err)
			if size < 4096 {
				defer resp.Body.Close()
				require.Equal(t, http.StatusOK, resp.StatusCode)
				return
			}
			requireOpenAIError(t, resp, http.StatusRequestEntityTooLarge, "request_too_large")
		})
	}
}

// TestExtProcTimeoutHasOpenAIShape: when ext_proc misses Envoy's message
// timeout, the client gets a 504 in the OpenAI error shape, not plain text.
func TestExtProcTimeoutHasOpenAIShape(t *testing.T) {
	g := startGateway(t, strings.Replace(defaultConfig, "extproc:\n", "extproc:\n  message_timeout: 1ms\n", 1))
	// Several MiB take Streamgate well over a millisecond to receive and check.
	body := chatBody("model-a", false, strings.Repeat("t", 6<<20))
	resp, err := http.Post(g.gateway+"/v1/chat/completions", "application/json", strings.NewReader(string(body)))
	require.NoError(t, err)
	requireOpenAIError(t, resp, http.StatusGatewayTimeout, "gateway_timeout")
}

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/envoy"
	"github.com/streamgate/streamgate/extproc/auth"
	"github.com/streamgate/streamgate/xds"
)

// rawService is a plain HTTP backend: /echo answers the request body
// back, /stream writes a line every 100 ms until five are out, /hold
// answers when released; every request's path and headers are recorded.
type rawService struct {
	mu      sync.Mutex
	seen    []*http.Request
	release chan struct{}
}

func (s *rawService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.seen = append(s.seen, r)
	s.mu.Unlock()
	switch r.URL.Path {
	case "/echo":
		w.Header().Set("content-type", "application/octet-stream")
		_, _ = io.Copy(w, r.Body)
	case "/stream":
		w.Header().Set("content-type", "text/plain")
		for i := range 5 {
			fmt.Fprintf(w, "line %d\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	case "/hold":
		<-s.release
	default:
		_, _ = io.WriteString(w, "ok")
	}
}

func (s *rawService) last() *http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[len(s.seen)-1]
}

func startRawService(t testing.TB) (*rawService, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &rawService{release: make(chan struct{})}
	srv := &http.Server{Handler: s}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return s, l.Addr().String()
}

// rawConfig mounts the raw service (%[1]s) on /raw/ for acme, one request
// at a time (after listeners, see rawGatewayConfig).
const rawConfig = `backends:
  - name: raw
    protocol: http
    endpoints: [%[1]s]
services:
  - {name: raw, backend: raw, path_prefix: /raw/, rewrite: /}
auth:
  tenants:
    - name: acme
      services: [{name: raw, operations: ["*"]}]
      api_keys: [{hash: %[2]s}]
limits:
  queue: {max_wait: 200ms}
  tenants:
    - name: acme
      services: [{name: raw, concurrent_requests: 1}]
`

// rawGatewayConfig is the raw service's gateway config for a service at
// addr, with a small max_request_body_bytes to show service bodies are not
// buffered.
func rawGatewayConfig(addr string) string {
	gateway := "  listen: {{.Gateway}}\n"
	return strings.Replace(listeners, gateway, gateway+"  max_request_body_bytes: 65536\n", 1) + fmt.Sprintf(rawConfig, addr, auth.HashKey(svcKeyAcme))
}

// serviceEvent reads the usage events on stream until the one of the
// request requestID arrives, and returns it.
func serviceEvent(t *testing.T, stream jetstream.Stream, requestID string) map[string]any {
	t.Helper()
	cons, err := stream.OrderedConsumer(t.Context(), jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(500*time.Millisecond))
		require.NoError(t, err)
		for msg := range batch.Messages() {
			var ev map[string]any
			require.NoError(t, json.Unmarshal(msg.Data(), &ev))
			if ev["request_id"] == requestID {
				return ev
			}
		}
	}
	t.Fatalf("no usage event for request %s", requestID)
	return nil
}

// TestServicePassThrough: a service request's body and response pass
// byte for byte and unbuffered, the path is rewritten, the client's key is
// replaced by the verified tenant, and a concurrency slot is held until
// the response ends.
func TestServicePassThrough(t *testing.T) {
	svc, addr := startRawService(t)
	natsURL, stream := startNATS(t)
	g := startGateway(t, rawGatewayConfig(addr)+"telemetry:\n  nats: {url: "+natsURL+", subject: streamgate.usage, jetstream: true}\n")
	do := func(ctx context.Context, method, path string, body io.Reader) *http.Response {
		req, err := http.NewRequestWithContext(ctx, method, g.gateway+path, body)
		require.NoError(t, err)
		req.Header.Set("authorization", "Bearer "+svcKeyAcme)
		req.Header.Set("x-streamgate-backend", "nope")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		return resp
	}

	t.Run("a large body both ways, byte for byte, never buffered", func(t *testing.T) {
		body := make([]byte, 3<<20) // far over max_request_body_bytes
		_, _ = rand.Read(body)
		resp := do(t.Context(), http.MethodPost, "/raw/echo?x=1&y=%2F", bytes.NewReader(body))
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(got[:min(len(got), 300)]))
		assert.True(t, bytes.Equal(body, got), "the echoed body is the one sent")
		r := svc.last()
		assert.Equal(t, "/echo?x=1&y=%2F", r.RequestURI, "prefix rewritten, query untouched")
		assert.Empty(t, r.Header.Get("authorization"), "the client's key never reaches the service")
		assert.Equal(t, "acme", r.Header.Get(config.DefaultTenantHeader))
		assert.Empty(t, r.Header.Get("x-streamgate-backend"))

		// The usage event of the same schema family names service,
		// operation and both bodies' bytes.
		ev := serviceEvent(t, stream, resp.Header.Get("x-request-id"))
		assert.Equal(t, "raw", ev["service"])
		assert.Equal(t, "any", ev["operation"])
		assert.Equal(t, "acme", ev["tenant"])
		assert.Equal(t, 200.0, ev["status"])
		assert.Equal(t, float64(len(body)), ev["request_bytes"])
		assert.Equal(t, float64(len(body)), ev["response_bytes"])
	})

	t.Run("the response streams as the service writes it", func(t *testing.T) {
		start := time.Now()
		resp := do(t.Context(), http.MethodGet, "/raw/stream", nil)
		defer resp.Body.Close()
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, "line 0\n", line)
		assert.Less(t, time.Since(start), 350*time.Millisecond, "the first line came before the last was written")
	})

	t.Run("a slot is held until the response ends", func(t *testing.T) {
		held := make(chan *http.Response, 1)
		go func() { held <- do(context.Background(), http.MethodGet, "/raw/hold", nil) }()
		require.Eventually(t, func() bool {
			svc.mu.Lock()
			defer svc.mu.Unlock()
			return slices.ContainsFunc(svc.seen, func(r *http.Request) bool { return r.URL.Path == "/hold" })
		}, 5*time.Second, 10*time.Millisecond)
		resp := do(t.Context(), http.MethodGet, "/raw/x", nil)
		resp.Body.Close()
		assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "one request at a time")
		close(svc.release)
		first := <-held
		first.Body.Close()
		assert.Equal(t, http.StatusOK, first.StatusCode)
		require.Eventually(t, func() bool {
			resp := do(t.Context(), http.MethodGet, "/raw/x", nil)
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}, 5*time.Second, 20*time.Millisecond, "the slot came back when the held response ended")
	})
}

// TestServiceAddedLatency measures what the gateway adds to a small service
// request and, on the same machine in the same run, to a small model
// request: p50 over sequential requests straight to the backend, through
// plain Envoy with the same routes (no ext_proc; the model request carries
// the routing header itself), and through the gateway with its policy
// (API key, operation, scope and limits for the service; API key, model
// authorization and routing for the model). Run with
// STREAMGATE_SERVICE_BENCH=1; docs/services.md quotes it.
func TestServiceAddedLatency(t *testing.T) {
	if os.Getenv("STREAMGATE_SERVICE_BENCH") != "1" {
		t.Skip("set STREAMGATE_SERVICE_BENCH=1 to measure")
	}
	const n = 400
	_, addr := startRawService(t)
	cfgText := strings.Replace(rawGatewayConfig(addr), "concurrent_requests: 1", "requests_per_minute: 1000000, concurrent_requests: 4", 1)
	cfgText = strings.Replace(cfgText, "backends:\n", "backends:\n  - name: fake\n    protocol: openai\n    endpoints: [\"{{.BackendA}}\"]\n", 1)
	cfgText = strings.Replace(cfgText, "      services: [{name: raw", "      models: [\"*\"]\n      services: [{name: raw", 1)
	cfgText += "models:\n  - {name: m, backend: fake}\n"
	g := startGateway(t, cfgText)
	plain := startPlainEnvoy(t, strings.ReplaceAll(cfgText, "{{.BackendA}}", hostPort(gw.backendA.url)))
	chat := `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":1}`
	measure := func(method, url, body string, h map[string]string) time.Duration {
		c := &http.Client{}
		ds := make([]time.Duration, 0, n)
		for i := range n + 50 {
			req, _ := http.NewRequest(method, url, strings.NewReader(body))
			for k, v := range h {
				req.Header.Set(k, v)
			}
			start := time.Now()
			resp, err := c.Do(req)
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, url)
			if i >= 50 { // warm-up
				ds = append(ds, time.Since(start))
			}
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	key := map[string]string{"authorization": "Bearer " + svcKeyAcme}
	json := map[string]string{"content-type": "application/json"}
	svcDirect := measure(http.MethodGet, "http://"+addr+"/x", "", nil)
	svcPlain := measure(http.MethodGet, plain+"/raw/x", "", nil)
	svcGateway := measure(http.MethodGet, g.gateway+"/raw/x", "", key)
	modelDirect := measure(http.MethodPost, gw.backendA.url+"/v1/chat/completions", chat, json)
	modelPlain := measure(http.MethodPost, plain+"/v1/chat/completions", chat, map[string]string{"content-type": "application/json", "x-streamgate-backend": "fake"})
	modelGateway := measure(http.MethodPost, g.gateway+"/v1/chat/completions", chat, map[string]string{"content-type": "application/json", "authorization": "Bearer " + svcKeyAcme})
	t.Logf("service p50 over %d requests: direct %v, plain Envoy %v, gateway with policy %v: +%v over plain Envoy", n, svcDirect, svcPlain, svcGateway, svcGateway-svcPlain)
	t.Logf("model p50 over %d requests: direct %v, plain Envoy %v, gateway %v: +%v over plain Envoy", n, modelDirect, modelPlain, modelGateway, modelGateway-modelPlain)
}

// startPlainEnvoy runs Envoy alone with the listener, routes and clusters
// of configTemplate (xds.StaticBootstrap, no ext_proc) and returns its URL.
func startPlainEnvoy(t *testing.T, configTemplate string) string {
	t.Helper()
	ports, err := freePorts(5)
	require.NoError(t, err)
	cfgText := strings.NewReplacer("{{.Gateway}}", ports[0], "{{.ExtProc}}", ports[1], "{{.XDS}}", ports[2], "{{.Admin}}", ports[3], "{{.Metrics}}", ports[4]).Replace(configTemplate)
	cfg, err := config.Parse("plain.yaml", []byte(cfgText))
	require.NoError(t, err)
	boot, err := xds.StaticBootstrap(cfg, xds.StaticOptions{Plain: true})
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "envoy.json")
	require.NoError(t, os.WriteFile(path, boot, 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	proc, err := envoy.Start(ctx, os.Getenv("ENVOY_BIN"), path, "warning", &logs)
	require.NoError(t, err)
	t.Cleanup(func() {
		cancel()
		<-proc.Done()
		if t.Failed() {
			t.Logf("---- plain envoy logs ----\n%s", logs.String())
		}
	})
	url := "http://" + ports[0]
	require.Eventually(t, func() bool {
		resp, err := http.Get(url + "/raw/x")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond, "plain Envoy did not start: %s", logs.String())
	return url
}

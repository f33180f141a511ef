package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/streamgate/streamgate/cmd/streamgate/cli"
	"github.com/streamgate/streamgate/envoy"
	"github.com/streamgate/streamgate/examples/fakellm"
)

// env is one running gateway: real Envoy started by `streamgate run`, and two
// fakellm backends, all on free loopback ports. TestMain starts it once.
type env struct {
	gateway  string // http://127.0.0.1:port
	admin    string
	metrics  string
	backendA *backend
	backendB *backend
	logs     *syncBuffer
	stderr   *syncBuffer // when set, streamgate run's stderr; else logs takes both
	// configPath is the config file the gateway was started with.
	configPath string
	cancel     context.CancelFunc
	done       chan error
	// client, when set, is how the harness reaches a TLS gateway
	// (gateway is then https://).
	client *http.Client
}

var gw *env

// backend is a fakellm server with a tap on the bytes it writes.
type backend struct {
	*fakellm.Server
	url string
	tap *tap
}

func TestMain(m *testing.M) {
	bin, err := envoyBinary()
	if err != nil {
		if os.Getenv("STREAMGATE_REQUIRE_ALL") == "1" {
			fmt.Fprintln(os.Stderr, "e2e: Envoy is required (STREAMGATE_REQUIRE_ALL=1):", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "e2e: skipping, no Envoy:", err)
		os.Exit(0)
	}
	os.Setenv("ENVOY_BIN", bin)
	gw, err = startEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: cannot start gateway:", err)
		if gw != nil {
			fmt.Fprintln(os.Stderr, gw.logs.String())
		}
		os.Exit(1)
	}
	code := m.Run()
	gw.stop()
	// Issue 21: no key, token or prompt in any log line of the run.
	if leaks := secretLeaks(); len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: %d secrets in the logs of this run:\n%s\n", len(leaks), strings.Join(leaks, "\n"))
		code = 1
	} else {
		n, size := scannedLogs()
		fmt.Fprintf(os.Stderr, "e2e: secret scan: %d logs, %d bytes, no secret\n", n, size)
	}
	if code != 0 {
		fmt.Fprintln(os.Stderr, "---- streamgate + envoy logs ----")
		fmt.Fprintln(os.Stderr, gw.logs.String())
	}
	os.Exit(code)
}

// envoyBinary finds Envoy the way `streamgate run` does, from the repo root.
func envoyBinary() (string, error) {
	wd, _ := os.Getwd()
	return envoy.Find(filepath.Dir(wd))
}

// listeners is the start of every test config: a free loopback port for
// each of the gateway's listeners.
const listeners = `gateway:
  listen: {{.Gateway}}
extproc:
  listen: {{.ExtProc}}
xds:
  listen: {{.XDS}}
envoy:
  admin: {{.Admin}}
metrics:
  listen: {{.Metrics}}
`

// twoBackends declares the two fake backends every gateway shares.
const twoBackends = `backends:
  - name: backend-a
    protocol: openai
    endpoints: [{{.BackendA}}]
  - name: backend-b
    protocol: openai
    endpoints: [{{.BackendB}}]
`

// defaultConfig is the shared gateway's config: two models on two backends.
const defaultConfig = listeners + twoBackends + `models:
  - name: model-a
    backend: backend-a
    upstream_model: upstream-a
  - name: model-b
    backend: backend-b
telemetry:
  usage: true
  prices: {model-a: {input_per_million: 1, output_per_million: 2}}
`

// Ports fill a config template: free loopback addresses for every listener
// and the two fake backends' addresses.
type Ports struct {
	Gateway, ExtProc, XDS, Admin, Metrics string
	BackendA, BackendB                    string
}

func startEnv() (*env, error) {
	e := &env{logs: &syncBuffer{}, done: make(chan error, 1)}
	var err error
	if e.backendA, err = startBackend("backend-a"); err != nil {
		return nil, err
	}
	if e.backendB, err = startBackend("backend-b"); err != nil {
		return nil, err
	}
	return e, e.start(defaultConfig)
}

// startGateway runs another gateway (its own streamgate run + Envoy) with
// configTemplate, sharing the two fake backends of the main one. It stops
// when the test ends and dumps its logs if the test failed.
func startGateway(t testing.TB, configTemplate string) *env {
	t.Helper()
	e := &env{logs: &syncBuffer{}, done: make(chan error, 1), backendA: gw.backendA, backendB: gw.backendB}
	err := e.start(configTemplate)
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			t.Logf("---- gateway logs ----\n%s", e.logs.String())
		}
	})
	if err != nil {
		t.Fatalf("cannot start gateway: %v", err)
	}
	return e
}

func (e *env) start(configTemplate string) error {
	ports, err := freePorts(5)
	if err != nil {
		return err
	}
	p := Ports{Gateway: ports[0], ExtProc: ports[1], XDS: ports[2], Admin: ports[3], Metrics: ports[4],
		BackendA: hostPort(e.backendA.url), BackendB: hostPort(e.backendB.url)}
	e.gateway = "http://" + p.Gateway
	if e.client != nil {
		e.gateway = "https://" + p.Gateway
	}
	e.admin = "http://" + p.Admin
	e.metrics = "http://" + p.Metrics
	var cfg bytes.Buffer
	if err := template.Must(template.New("cfg").Parse(configTemplate)).Execute(&cfg, p); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "streamgate-e2e-")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "streamgate.yaml")
	if err := os.WriteFile(path, cfg.Bytes(), 0o600); err != nil {
		return err
	}
	e.configPath = path
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	var stderr io.Writer = e.logs
	if e.stderr != nil {
		stderr = e.stderr
	}
	go func() {
		e.done <- cli.Main(ctx, []string{"run", "-c", path, "--envoy-log-level", "warning"}, e.logs, stderr)
	}()
	return e.waitReady(30 * time.Second)
}

// waitReady polls the gateway until Envoy has its listener and routes.
func (e *env) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case err := <-e.done:
			return fmt.Errorf("streamgate exited early: %v", err)
		default:
		}
		client := e.client
		if client == nil {
			client = http.DefaultClient
		}
		resp, err := client.Get(e.gateway + "/v1/models")
		if err == nil {
			resp.Body.Close()
			// 401: ext_proc answered a gateway that requires credentials.
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("gateway not ready after %s", limit)
}

func (e *env) stop() {
	e.cancel()
	select {
	case <-e.done:
	case <-time.After(20 * time.Second):
		fmt.Fprintln(os.Stderr, "e2e: streamgate did not stop in 20s")
	}
}

func startBackend(name string) (*backend, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &backend{Server: fakellm.New(fakellm.Options{Name: name}), url: "http://" + lis.Addr().String(), tap: &tap{}}
	go func() { _ = http.Serve(lis, b.tap.wrap(b.Server)) }()
	return b, nil
}

func freePorts(n int) ([]string, error) {
	var out []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

func hostPort(url string) string { return strings.TrimPrefix(url, "http://") }

// syncBuffer collects process logs from several goroutines.
// The first write adds it to the secret scan (secrets_test.go).
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	scanned sync.Once
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.scanned.Do(func() { registerLogs(s) })
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// tap records the bytes a backend writes, and the request headers it
// received, for requests carrying the header x-e2e-tap, so a test can
// compare them with what the client sent and received.
type tap struct {
	mu      sync.Mutex
	byID    map[string]*bytes.Buffer
	headers map[string]http.Header
	uris    map[string]string
}

func (t *tap) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("x-e2e-tap")
		if id == "" {
			h.ServeHTTP(w, r)
			return
		}
		buf := &bytes.Buffer{}
		t.mu.Lock()
		if t.byID == nil {
			t.byID, t.headers, t.uris = map[string]*bytes.Buffer{}, map[string]http.Header{}, map[string]string{}
		}
		t.byID[id] = buf
		t.headers[id] = r.Header.Clone()
		t.uris[id] = r.RequestURI
		t.mu.Unlock()
		h.ServeHTTP(&tapWriter{ResponseWriter: w, buf: buf, mu: &t.mu}, r)
	})
}

func (t *tap) bytes(id string) []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	if b := t.byID[id]; b != nil {
		return append([]byte(nil), b.Bytes()...)
	}
	return nil
}

// requestHeaders returns the headers the backend received for a tapped request.
func (t *tap) requestHeaders(id string) http.Header {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.headers[id]
}

// requestURI returns the path and query the backend received for a tapped request.
func (t *tap) requestURI(id string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.uris[id]
}

type tapWriter struct {
	http.ResponseWriter
	buf *bytes.Buffer
	mu  *sync.Mutex
}

func (w *tapWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf.Write(p)
	w.mu.Unlock()
	return w.ResponseWriter.Write(p)
}

func (w *tapWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer (hijack, flush).
func (w *tapWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// twoModels is the start of a limits test's config: listeners, ext_proc's
// message timeout, both fake backends and model-a and model-b on them.
func twoModels(messageTimeout string) string {
	return strings.Replace(listeners, "  listen: {{.ExtProc}}\n", "  listen: {{.ExtProc}}\n  message_timeout: "+messageTimeout+"\n", 1) +
		twoBackends + `models:
  - name: model-a
    backend: backend-a
  - name: model-b
    backend: backend-b
`
}

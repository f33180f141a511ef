package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/cmd/streamgate/cli"
	"github.com/streamgate/streamgate/examples/fakellm"
	"github.com/streamgate/streamgate/extproc/auth"
)

// Bridge tests (docs/streams.md): requests published on NATS JetStream and
// Kafka, sent through real Envoy by `streamgate bridge`, answered on a
// result stream. The bridge's credentials are keys of two tenants.
const (
	bridgeKeyBatch = "sk-e2e-bridge-batch-5c1f0a"
	bridgeKeyGuest = "sk-e2e-bridge-guest-8d2e4b"
)

// bridgeGatewayConfig is a gateway with one counting backend, two tenants
// (batch may use every model, guest only model-b) and a bridge whose source
// list is the template's Source.
const bridgeGatewayConfig = `gateway:
  listen: {{.Gateway}}
  drain_timeout: 10s
  access_log: "off"
extproc:
  listen: {{.ExtProc}}
xds:
  listen: {{.XDS}}
envoy:
  admin: {{.Admin}}
metrics:
  listen: {{.Metrics}}
backends:
  - name: llm
    protocol: openai
    endpoints: [{{.Backend}}]
models:
  - name: model-a
    backend: llm
  - name: model-b
    backend: llm
auth:
  tenants:
    - name: batch
      models: ["*"]
      api_keys: [{hash: "{{.BatchHash}}"}]
    - name: guest
      models: [model-b]
      api_keys: [{hash: "{{.GuestHash}}"}]
bridge:
  run: {{.Run}}
  max_in_flight: 32
  max_attempts: 40
  backoff: 200ms
  max_backoff: 2s
  credentials:
    - {name: batch, env: SG_E2E_BRIDGE_BATCH}
    - {name: guest, env: SG_E2E_BRIDGE_GUEST}
  sources:
{{.Source}}{{.Extra}}`

// bridgePorts fill bridgeGatewayConfig.
type bridgePorts struct {
	Gateway, ExtProc, XDS, Admin, Metrics, Backend string
	BatchHash, GuestHash, Source, Extra            string
	Run                                            bool
}

// idCountingBackend is fakellm behind a count of the requests it received
// per request id (the body's "user" field): the effect the bridge must not
// duplicate.
type idCountingBackend struct {
	url    string
	server *fakellm.Server
	mu     sync.Mutex
	seen   map[string]int
	// open and peak count requests in progress at the backend.
	open, peak int
}

func startIDCountingBackend(t *testing.T, opts fakellm.Options) *idCountingBackend {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b := &idCountingBackend{url: lis.Addr().String(), server: fakellm.New(opts), seen: map[string]int{}}
	srv := &http.Server{Handler: b, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return b
}

func (b *idCountingBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		body, _ := io.ReadAll(r.Body)
		var req struct {
			User string `json:"user"`
		}
		_ = json.Unmarshal(body, &req)
		b.mu.Lock()
		b.seen[req.User]++
		b.open++
		b.peak = max(b.peak, b.open)
		b.mu.Unlock()
		defer func() { b.mu.Lock(); b.open--; b.mu.Unlock() }()
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	b.server.ServeHTTP(w, r)
}

// peakOpen returns the most requests the backend had in progress at once,
// and resets it.
func (b *idCountingBackend) peakOpen() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.peak
	b.peak = b.open
	return p
}

func (b *idCountingBackend) counts() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.seen)
}

// process is one in-process `streamgate` command, restartable.
type process struct {
	args   []string
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
	// failed is set when a run returned an error.
	failed atomic.Bool
}

func startProcess(args []string, logs *syncBuffer) *process {
	p := &process{args: args, logs: logs}
	p.start()
	return p
}

func (p *process) start() {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan error, 1)
	done := p.done
	go func() {
		err := cli.Main(ctx, p.args, p.logs, p.logs)
		if err != nil {
			p.failed.Store(true)
		}
		done <- err
	}()
}

// stop is SIGTERM: the gateway drains, the bridge finishes what it holds.
func (p *process) stop(t *testing.T) {
	p.cancel()
	select {
	case err := <-p.done:
		assert.NoError(t, err, "%v exited with an error", p.args[0])
	case <-time.After(30 * time.Second):
		t.Errorf("%v did not stop in 30s", p.args[0])
	}
}

// bridgeSetup is a gateway and a bridge on the config of source.
type bridgeSetup struct {
	backend *idCountingBackend
	gateway *process
	bridge  *process // nil when the gateway runs the bridge (bridge.run)
	url     string   // the gateway
	metrics string   // the bridge's /metrics
	logs    *syncBuffer
}

func startBridgeSetup(t *testing.T, source string, embedded bool, opts fakellm.Options) *bridgeSetup {
	t.Helper()
	return startBridgeSetupExtra(t, source, "", embedded, opts)
}

// startBridgeSetupExtra is startBridgeSetup with top-level config sections
// appended (extra).
func startBridgeSetupExtra(t *testing.T, source, extra string, embedded bool, opts fakellm.Options) *bridgeSetup {
	t.Helper()
	t.Setenv("SG_E2E_BRIDGE_BATCH", bridgeKeyBatch)
	t.Setenv("SG_E2E_BRIDGE_GUEST", bridgeKeyGuest)
	s := &bridgeSetup{backend: startIDCountingBackend(t, opts), logs: &syncBuffer{}}
	ports, err := freePorts(6)
	require.NoError(t, err)
	p := bridgePorts{Gateway: ports[0], ExtProc: ports[1], XDS: ports[2], Admin: ports[3], Metrics: ports[4], Backend: s.backend.url,
		BatchHash: auth.HashKey(bridgeKeyBatch), GuestHash: auth.HashKey(bridgeKeyGuest), Source: source, Extra: extra, Run: embedded}
	var cfg bytes.Buffer
	require.NoError(t, template.Must(template.New("cfg").Parse(bridgeGatewayConfig)).Execute(&cfg, p))
	path := filepath.Join(t.TempDir(), "streamgate.yaml")
	require.NoError(t, os.WriteFile(path, cfg.Bytes(), 0o600))
	s.url = "http://" + ports[0]
	s.metrics = "http://" + ports[4] + "/metrics"
	s.gateway = startProcess([]string{"run", "-c", path, "--envoy-log-level", "error"}, s.logs)
	t.Cleanup(func() {
		if s.bridge != nil {
			s.bridge.stop(t)
		}
		s.gateway.stop(t)
		if t.Failed() {
			t.Logf("---- gateway + bridge logs ----\n%s", tail(s.logs.String(), 20000))
		}
	})
	require.NoError(t, s.gatewayReady(60*time.Second))
	if !embedded {
		s.metrics = "http://" + ports[5] + "/metrics"
		s.bridge = startProcess([]string{"bridge", "-c", path, "-metrics", ports[5]}, s.logs)
	}
	return s
}

// gatewayAnswers reports whether the gateway at url answers (401: auth is on).
func gatewayAnswers(url string) bool {
	resp, err := http.Get(url + "/v1/models")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusUnauthorized
}

// envelope is a request message for id on model, answered on replyTo.
func envelope(id, model, credential, replyTo string, chunks bool) []byte {
	body := map[string]any{"model": model, "user": id, "max_tokens": 4,
		"messages": []map[string]string{{"role": "user", "content": "summarise record " + id}}}
	if chunks {
		body["stream"] = true
		body["stream_options"] = map[string]bool{"include_usage": true}
	}
	e := map[string]any{"id": id, "reply_to": replyTo, "body": body, "stream_chunks": chunks}
	if credential != "" {
		e["credential"] = credential
	}
	b, _ := json.Marshal(e)
	return b
}

// replyMessage is what the result stream carries (docs/streams.md).
type replyMessage struct {
	ID      string          `json:"id"`
	Seq     int             `json:"seq"`
	Final   bool            `json:"final"`
	Status  int             `json:"status"`
	Attempt int             `json:"attempt"`
	Chunk   json.RawMessage `json:"chunk"`
	Body    json.RawMessage `json:"body"`
	Usage   json.RawMessage `json:"usage"`
}

// tally counts the answers of every request id on the result stream.
type tally struct {
	mu       sync.Mutex
	answers  map[string][]replyMessage // whole results and final messages
	chunks   map[string][]replyMessage
	answered map[string]time.Time
}

func newTally() *tally {
	return &tally{answers: map[string][]replyMessage{}, chunks: map[string][]replyMessage{}, answered: map[string]time.Time{}}
}

func (ta *tally) add(t *testing.T, data []byte) {
	var m replyMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Errorf("a result message is not JSON: %v", err)
		return
	}
	ta.mu.Lock()
	defer ta.mu.Unlock()
	if m.Chunk != nil {
		ta.chunks[m.ID] = append(ta.chunks[m.ID], m)
		return
	}
	ta.answers[m.ID] = append(ta.answers[m.ID], m)
	if _, ok := ta.answered[m.ID]; !ok {
		ta.answered[m.ID] = time.Now()
	}
}

func (ta *tally) count() int {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	return len(ta.answered)
}

// check asserts every id got exactly one answer, with status 200, and a
// streamed one its chunks in order.
func (ta *tally) check(t *testing.T, ids []string, chunked func(string) bool) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	missing, dup := 0, 0
	for _, id := range ids {
		as := ta.answers[id]
		switch {
		case len(as) == 0:
			missing++
			continue
		case len(as) > 1:
			dup++
		}
		a := as[0]
		assert.Equal(t, 200, a.Status, "request %s", id)
		if !chunked(id) {
			assert.NotEmpty(t, a.Body, "request %s: whole result without a body", id)
			continue
		}
		assert.True(t, a.Final, "request %s: a streamed request ends with a final message", id)
		assert.NotEmpty(t, a.Usage, "request %s: the final message carries the usage", id)
		var seqs []int
		for _, c := range ta.chunks[id] {
			if c.Attempt == a.Attempt {
				seqs = append(seqs, c.Seq)
			}
		}
		require.NotEmpty(t, seqs, "request %s: no chunks", id)
		for i, s := range seqs {
			if !assert.Equal(t, i+1, s, "request %s: chunks out of order", id) {
				break
			}
		}
		assert.Equal(t, a.Seq, len(seqs)+1, "request %s: final seq follows the chunks", id)
	}
	assert.Zero(t, missing, "requests never answered")
	assert.Zero(t, dup, "requests answered more than once")
}

// percentile returns the p-th percentile of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// scrape returns the lines of a /metrics page that start with prefix.
func scrapeLines(t *testing.T, url, prefix string) []string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

func bridgeRequests(string) int {
	if os.Getenv("STREAMGATE_BRIDGE_SOAK") == "1" {
		return 10000
	}
	return 500
}

func requestIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return ids
}

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/streamgate/streamgate/examples/fakekserve/inferencepb"
	"github.com/streamgate/streamgate/extproc/auth"
)

// The soak (issue 21 item 4): mixed traffic at moderate load through a
// `streamgate run` subprocess and its Envoy for SOAK_DURATION (make soak:
// 30m; make test: 60s), sampling both processes' RSS and open file
// descriptors (/proc), Streamgate's goroutines (its metrics) and Envoy's
// allocated heap (admin /memory). After the first half (warm-up: pools,
// caches, the Go heap and tcmalloc reach their working size) a
// least-squares line is fitted to each series; the run fails when a line
// rises over the second half by more than the series' tolerance
// (soakTolerances, docs/soak.md says why).

const (
	soakKeyAcme = "sk-e2e-soak-acme-6d8f0b2c4e"
	soakKeyTiny = "sk-e2e-soak-tiny-1e3a5c7f9b"
)

// soakConfig: an OpenAI backend (chat, and /v1/messages translated to it),
// an Anthropic backend (/v1/messages as is), a KServe gRPC backend, keys
// for two tenants of which one may send one request a minute.
const soakConfig = listeners + `backends:
  - name: backend-a
    protocol: openai
    endpoints: [{{.BackendA}}]
  - name: claude
    protocol: anthropic
    endpoints: [{{.BackendB}}]
  - name: kserve
    protocol: kserve-v2-grpc
    endpoints: [@KSERVE@]
models:
  - {name: model-a, backend: backend-a}
  - {name: model-t, backend: claude}
  - {name: resnet, backend: kserve}
auth:
  tenants:
    - name: acme
      models: ["*"]
      api_keys: [{hash: "@ACME@"}]
    - name: tiny
      models: ["*"]
      api_keys: [{hash: "@TINY@"}]
limits:
  tenants:
    - name: acme
      concurrent_streams: 64
    - name: tiny
      requests_per_minute: 1
telemetry:
  usage: true
  prices: {model-a: {input_per_million: 1, output_per_million: 2}}
`

// soakTolerance is how far a series may rise over the measured window
// (the fitted line's end minus its start): Abs, or Rel of the window's
// mean, whichever is larger.
type soakTolerance struct {
	Abs, Rel float64
}

var soakTolerances = map[string]soakTolerance{
	"streamgate RSS (MiB)":       {Abs: 16, Rel: 0.10},
	"streamgate goroutines":      {Abs: 24},
	"streamgate FDs":             {Abs: 8},
	"envoy RSS (MiB)":            {Abs: 16, Rel: 0.10},
	"envoy heap allocated (MiB)": {Abs: 8, Rel: 0.10},
	"envoy FDs":                  {Abs: 16},
}

// soakSample is one reading of every series, at a time since the start.
type soakSample struct {
	at     time.Duration
	values map[string]float64
}

func soakDuration(t *testing.T) time.Duration {
	s := os.Getenv("SOAK_DURATION")
	if s == "" {
		return time.Minute
	}
	d, err := time.ParseDuration(s)
	require.NoError(t, err, "SOAK_DURATION")
	return d
}

func TestSoak(t *testing.T) {
	d := soakDuration(t)
	g := startSoakGateway(t)
	every := max(2*time.Second, d/400)
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	load := runSoakLoad(ctx, t, g, 8)
	var samples []soakSample
	start := time.Now()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for ctx.Err() == nil {
		samples = append(samples, soakSample{at: time.Since(start), values: g.sample(t)})
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	load.wait()
	t.Logf("soak of %s, %d samples every %s: %s", d, len(samples), every, load.summary())
	unexpected := load.unexpected.Load()
	require.LessOrEqual(t, float64(unexpected), 0.005*float64(load.total.Load())+1, "unexpected outcomes: %s", load.summary())
	report := soakReport(samples, d)
	t.Log("\n" + report.table)
	if out := os.Getenv("SOAK_REPORT"); out != "" {
		require.NoError(t, os.WriteFile(out, []byte(report.table), 0o644))
	}
	for _, f := range report.failures {
		t.Error(f)
	}
}

// soakGateway is `streamgate run` as a child process (its RSS and FDs are
// its own, not the test's) with its Envoy.
type soakGateway struct {
	*env
	cmd   *exec.Cmd
	grpc  inferencepb.GRPCInferenceServiceClient
	envoy int // Envoy's pid, a child of streamgate
}

func startSoakGateway(t *testing.T) *soakGateway {
	_, _, kserve := startKServe(t, "kserve", "resnet")
	ports, err := freePorts(5)
	require.NoError(t, err)
	p := Ports{Gateway: ports[0], ExtProc: ports[1], XDS: ports[2], Admin: ports[3], Metrics: ports[4],
		BackendA: hostPort(gw.backendA.url), BackendB: hostPort(gw.backendB.url)}
	tmpl := strings.NewReplacer("@KSERVE@", kserve, "@ACME@", auth.HashKey(soakKeyAcme), "@TINY@", auth.HashKey(soakKeyTiny)).Replace(soakConfig)
	var cfg bytes.Buffer
	require.NoError(t, template.Must(template.New("c").Parse(tmpl)).Execute(&cfg, p))
	path := filepath.Join(t.TempDir(), "streamgate.yaml")
	require.NoError(t, os.WriteFile(path, cfg.Bytes(), 0o600))
	g := &soakGateway{env: &env{gateway: "http://" + p.Gateway, admin: "http://" + p.Admin, metrics: "http://" + p.Metrics, logs: &syncBuffer{}}}
	registerLogs(g.logs)
	g.cmd = exec.Command(buildStreamgate(t), "run", "-c", path, "--envoy-log-level", "warning")
	g.cmd.Stdout, g.cmd.Stderr = g.logs, g.logs
	require.NoError(t, g.cmd.Start())
	t.Cleanup(func() {
		_ = g.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = g.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = g.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("---- soak gateway logs ----\n%s", g.logs.String())
		}
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get(g.gateway + "/v1/models")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized
	}, 60*time.Second, 100*time.Millisecond, "soak gateway never served")
	g.envoy = childPID(t, g.cmd.Process.Pid)
	conn, err := grpc.NewClient(p.Gateway, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	g.grpc = inferencepb.NewGRPCInferenceServiceClient(conn)
	return g
}

// childPID is the one child process of pid (streamgate run's Envoy),
// started by whichever of pid's threads forked it.
func childPID(t *testing.T, pid int) int {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	require.NoError(t, err)
	var f []string
	for _, task := range tasks {
		raw, _ := os.ReadFile(task)
		f = append(f, strings.Fields(string(raw))...)
	}
	require.Len(t, f, 1, "streamgate run has one child, Envoy")
	child, err := strconv.Atoi(f[0])
	require.NoError(t, err)
	return child
}

func (g *soakGateway) sample(t *testing.T) map[string]float64 {
	const mib = 1 << 20
	return map[string]float64{
		"streamgate RSS (MiB)":       float64(procRSS(g.cmd.Process.Pid)) / mib,
		"streamgate goroutines":      metric(t, g.env, "go_goroutines"),
		"streamgate FDs":             float64(procFDs(g.cmd.Process.Pid)),
		"envoy RSS (MiB)":            float64(procRSS(g.envoy)) / mib,
		"envoy heap allocated (MiB)": float64(envoyAllocated(t, g.admin)) / mib,
		"envoy FDs":                  float64(procFDs(g.envoy)),
	}
}

// procRSS is a process's resident set in bytes (VmRSS), 0 if unreadable.
func procRSS(pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// procFDs counts a process's open file descriptors.
func procFDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	return len(ents)
}

// soakLoad is the traffic: each worker picks a request kind at random and
// checks it got that kind's expected outcome.
type soakLoad struct {
	wg                sync.WaitGroup
	total, unexpected atomic.Int64
	mu                sync.Mutex
	outcomes          map[string]int
}

func (l *soakLoad) wait() { l.wg.Wait() }

func (l *soakLoad) record(kind string, ok bool, detail string) {
	l.total.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if ok {
		l.outcomes[kind]++
		return
	}
	l.unexpected.Add(1)
	l.outcomes[kind+" UNEXPECTED "+detail]++
}

func (l *soakLoad) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("%d requests %v", l.total.Load(), l.outcomes)
}

// soakKinds are the request kinds with their weights.
var soakKinds = []struct {
	name   string
	weight int
	send   func(ctx context.Context, g *soakGateway, c *http.Client) (bool, string)
}{
	{"chat stream", 30, soakChatStream},
	{"chat", 15, soakHTTP("/v1/chat/completions", soakKeyAcme, `{"model":"model-a","messages":[{"role":"user","content":"soak"}]}`, 200, "")},
	{"messages (anthropic backend)", 10, soakMessages("model-t")},
	{"messages (translated to chat)", 10, soakMessages("model-a")},
	{"kserve grpc", 15, soakGRPC},
	{"refused: bad key", 7, soakHTTP("/v1/chat/completions", "sk-e2e-soak-wrong", `{"model":"model-a","messages":[]}`, 401, "invalid_api_key")},
	{"refused: over limit", 7, soakOverLimit},
	{"refused: unknown model", 6, soakHTTP("/v1/chat/completions", soakKeyAcme, `{"model":"nope","messages":[]}`, 404, "model_not_found")},
}

func runSoakLoad(ctx context.Context, t *testing.T, g *soakGateway, workers int) *soakLoad {
	l := &soakLoad{outcomes: map[string]int{}}
	sum := 0
	for _, k := range soakKinds {
		sum += k.weight
	}
	client := &http.Client{Timeout: 60 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 21))
			for ctx.Err() == nil {
				n := rng.IntN(sum)
				for _, k := range soakKinds {
					if n -= k.weight; n < 0 {
						ok, detail := k.send(context.WithoutCancel(ctx), g, client)
						if ctx.Err() == nil || ok {
							l.record(k.name, ok, detail)
						}
						break
					}
				}
				// Moderate load: a short pause between requests.
				time.Sleep(time.Duration(5+rng.IntN(10)) * time.Millisecond)
			}
		}()
	}
	return l
}

func soakRequest(ctx context.Context, c *http.Client, url, key, body string, h ...string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("authorization", "Bearer "+key)
	for i := 0; i+1 < len(h); i += 2 {
		req.Header.Set(h[i], h[i+1])
	}
	return c.Do(req)
}

func soakChatStream(ctx context.Context, g *soakGateway, c *http.Client) (bool, string) {
	resp, err := soakRequest(ctx, c, g.gateway+"/v1/chat/completions", soakKeyAcme, string(chatBody("model-a", true, "soak stream")),
		"x-fakellm-tokens", "20", "x-fakellm-itl-ms", "5")
	if err != nil {
		return false, "error"
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return false, strconv.Itoa(resp.StatusCode)
	}
	pieces, err := readStream(resp.Body)
	if err != nil || len(pieces) != 20 {
		return false, "stream cut"
	}
	return true, ""
}

// soakHTTP sends body and expects status (and, when set, the error code
// in the body).
func soakHTTP(path, key, body string, status int, code string) func(context.Context, *soakGateway, *http.Client) (bool, string) {
	return func(ctx context.Context, g *soakGateway, c *http.Client) (bool, string) {
		resp, err := soakRequest(ctx, c, g.gateway+path, key, body)
		if err != nil {
			return false, "error"
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != status || !strings.Contains(string(b), code) {
			return false, strconv.Itoa(resp.StatusCode)
		}
		return true, ""
	}
}

// soakOverLimit: the tenant allowed one request a minute is refused with
// 429, but for the minute's one request.
func soakOverLimit(ctx context.Context, g *soakGateway, c *http.Client) (bool, string) {
	resp, err := soakRequest(ctx, c, g.gateway+"/v1/chat/completions", soakKeyTiny, `{"model":"model-a","messages":[{"role":"user","content":"x"}]}`)
	if err != nil {
		return false, "error"
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode == http.StatusTooManyRequests && strings.Contains(string(b), "rate_limit"):
		return true, ""
	case resp.StatusCode == http.StatusOK:
		return true, ""
	}
	return false, strconv.Itoa(resp.StatusCode)
}

func soakMessages(model string) func(context.Context, *soakGateway, *http.Client) (bool, string) {
	body := `{"model":"` + model + `","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"soak"}]}`
	return func(ctx context.Context, g *soakGateway, c *http.Client) (bool, string) {
		resp, err := soakRequest(ctx, c, g.gateway+"/v1/messages", soakKeyAcme, body,
			"anthropic-version", "2023-06-01", "x-fakellm-tokens", "10", "x-fakellm-itl-ms", "5")
		if err != nil {
			return false, "error"
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || err != nil || !strings.Contains(string(b), "event: message_stop") {
			return false, strconv.Itoa(resp.StatusCode)
		}
		return true, ""
	}
}

func soakGRPC(ctx context.Context, g *soakGateway, _ *http.Client) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	resp, err := g.grpc.ModelInfer(call(ctx, "resnet", soakKeyAcme), inferRequest("resnet", "soak", nil))
	if err != nil || resp.GetModelName() != "resnet" {
		return false, fmt.Sprint(err)
	}
	return true, ""
}

// soakResult is the figures table (markdown) and the series that rose
// beyond their tolerance.
type soakResult struct {
	table    string
	failures []string
}

// soakReport fits a least-squares line to each series over the second
// half of the run and compares its rise with the series' tolerance.
func soakReport(samples []soakSample, d time.Duration) soakResult {
	var r soakResult
	var b strings.Builder
	fmt.Fprintf(&b, "| series | start | end of warm-up | end | max | fitted rise over the 2nd half | tolerance | verdict |\n|---|---:|---:|---:|---:|---:|---:|---|\n")
	names := make([]string, 0, len(soakTolerances))
	for n := range soakTolerances {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		tol := soakTolerances[name]
		var xs, ys []float64
		peak, warm := 0.0, -1.0
		for _, s := range samples {
			v := s.values[name]
			peak = max(peak, v)
			if s.at >= d/2 {
				if warm < 0 {
					warm = v
				}
				xs, ys = append(xs, s.at.Seconds()), append(ys, v)
			}
		}
		if len(xs) < 3 {
			r.failures = append(r.failures, fmt.Sprintf("%s: %d samples in the second half, need 3", name, len(xs)))
			continue
		}
		slope, mean := leastSquares(xs, ys)
		rise := slope * (xs[len(xs)-1] - xs[0])
		limit := max(tol.Abs, tol.Rel*mean)
		verdict := "flat"
		if rise > limit {
			verdict = "RISING"
			r.failures = append(r.failures, fmt.Sprintf("%s rises by %.1f over the second half (limit %.1f): a leak", name, rise, limit))
		}
		fmt.Fprintf(&b, "| %s | %.1f | %.1f | %.1f | %.1f | %+.1f | %.1f | %s |\n",
			name, samples[0].values[name], warm, ys[len(ys)-1], peak, rise, limit, verdict)
	}
	r.table = b.String()
	return r
}

// leastSquares returns the slope of the least-squares line through
// (xs, ys) and the mean of ys.
func leastSquares(xs, ys []float64) (slope, mean float64) {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0, sy / n
	}
	return (n*sxy - sx*sy) / den, sy / n
}

// TestSoakReportFlagsARise: the trend check fails a series that climbs in
// the second half and passes one that only climbed during warm-up or
// jitters around a level.
func TestSoakReportFlagsARise(t *testing.T) {
	const d = 100 * time.Second
	var samples []soakSample
	for i := range 51 {
		at := time.Duration(i) * 2 * time.Second
		v := map[string]float64{}
		for n := range soakTolerances {
			v[n] = 50 + float64(min(i, 20)) + float64(i%3) // warm-up climb, then jitter
		}
		v["streamgate goroutines"] = 40 + float64(i) // one more every 2 s: a leak
		samples = append(samples, soakSample{at: at, values: v})
	}
	r := soakReport(samples, d)
	require.Len(t, r.failures, 1, r.table)
	require.Contains(t, r.failures[0], "streamgate goroutines")
}

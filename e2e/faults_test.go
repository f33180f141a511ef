package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/cmd/streamgate/cli"
	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/envoy"
)

// The fault suite (issue 21): real Envoy under steady streaming load while
// one part of the gateway fails. `make faults` runs it long
// (STREAMGATE_FAULTS_LONG=1: more cycles, more clients); `make test` runs
// one cycle of each case.

// faultLoad is what the clients saw, by outcome.
type faultLoad struct {
	mu       sync.Mutex
	outcomes map[string]int
	// bodies are the distinct non-200 bodies, for the error-shape check.
	bodies map[string]int
	// lastFail and firstOKAfter time the outage as the clients saw it.
	lastFail time.Time
	oks      []time.Time
	// slowest is the longest time a request of each outcome took.
	slowest map[string]time.Duration
}

func (l *faultLoad) record(outcome string, body []byte, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outcomes[outcome]++
	l.slowest[outcome] = max(l.slowest[outcome], time.Since(at))
	if body != nil {
		l.bodies[string(body)]++
	}
	if outcome == "ok" {
		l.oks = append(l.oks, at)
	} else if at.After(l.lastFail) {
		l.lastFail = at
	}
}

// firstOKAfter is when the first request that started after t succeeded.
func (l *faultLoad) firstOKAfter(t time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	best := time.Duration(-1)
	for _, ok := range l.oks {
		if d := ok.Sub(t); d >= 0 && (best < 0 || d < best) {
			best = d
		}
	}
	return best
}

// runFaultLoad sends streaming completions of model-a from n clients
// until ctx ends.
func runFaultLoad(ctx context.Context, gateway string, n int) (*faultLoad, *sync.WaitGroup) {
	return runLoad(ctx, loadSpec{gateway: gateway, clients: n, model: "model-a"})
}

// loadSpec is a steady streaming load: clients sending chat completions of
// model, each with the headers headers holds at the time (nil: none), so a
// test can switch a backend fault on and off under it.
type loadSpec struct {
	gateway string
	clients int
	model   string
	headers *atomic.Pointer[map[string]string]
	// pause is how long a client waits after a request that failed
	// (0: none), so fast refusals do not spin.
	pause time.Duration
}

// runLoad runs spec until ctx ends. Each request has a deadline far above
// its normal time: one that passes it counts as hung.
func runLoad(ctx context.Context, spec loadSpec) (*faultLoad, *sync.WaitGroup) {
	l := &faultLoad{outcomes: map[string]int{}, bodies: map[string]int{}, slowest: map[string]time.Duration{}}
	client := &http.Client{Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for range spec.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				start := time.Now()
				req, _ := http.NewRequest(http.MethodPost, spec.gateway+"/v1/chat/completions", bytes.NewReader(chatBody(spec.model, true, "fault")))
				req.Header.Set("x-fakellm-tokens", "20")
				req.Header.Set("x-fakellm-itl-ms", "2")
				if spec.headers != nil {
					if h := spec.headers.Load(); h != nil {
						for k, v := range *h {
							req.Header.Set(k, v)
						}
					}
				}
				outcome, body := loadRequest(client, req)
				l.record(outcome, body, start)
				if outcome != "ok" {
					time.Sleep(spec.pause)
				}
			}
		}()
	}
	return l, &wg
}

// loadRequest sends req and reads its stream: "ok" with [DONE], "hung"
// past the client's deadline, "connection error", "status N" (with the
// body) or "stream cut".
func loadRequest(client *http.Client, req *http.Request) (string, []byte) {
	resp, err := client.Do(req)
	switch {
	case err != nil && strings.Contains(err.Error(), "Client.Timeout"):
		return "hung", nil
	case err != nil:
		return "connection error", nil
	case resp.StatusCode != http.StatusOK:
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return fmt.Sprintf("status %d", resp.StatusCode), body
	}
	_, err = readStream(resp.Body)
	resp.Body.Close()
	switch {
	case err != nil && strings.Contains(err.Error(), "Client.Timeout"):
		return "hung", nil
	case err != nil:
		return "stream cut", nil
	}
	return "ok", nil
}

// faultsLong reports whether `make faults` asked for the long suite.
func faultsLong() bool { return os.Getenv("STREAMGATE_FAULTS_LONG") != "" }

// buildStreamgate builds the streamgate binary for a test that must
// SIGKILL it.
func buildStreamgate(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "streamgate")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/streamgate").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// faultGateway is Envoy fed by an in-process `streamgate xds` and an
// `streamgate extproc` subprocess, so each can fail on its own.
type faultGateway struct {
	t                        *testing.T
	bin, cfgPath             string
	gateway, admin, metricsX string
	// metrics is the ext_proc process's metrics address.
	metrics   string
	envoyPID  int
	extproc   *exec.Cmd
	xdsCancel context.CancelFunc
	xdsDone   chan error
	logs      *syncBuffer
}

func startFaultGateway(t *testing.T) *faultGateway { return startFaultGatewayWith(t, defaultConfig) }

// startFaultGatewayWith starts a faultGateway with configTemplate.
func startFaultGatewayWith(t *testing.T, configTemplate string) *faultGateway {
	ports, err := freePorts(6)
	require.NoError(t, err)
	dir := t.TempDir()
	g := &faultGateway{t: t, bin: buildStreamgate(t), cfgPath: filepath.Join(dir, "streamgate.yaml"), logs: &syncBuffer{},
		gateway: "http://" + ports[0], admin: ports[3], metricsX: ports[5], metrics: "http://" + ports[4]}
	var cfg bytes.Buffer
	require.NoError(t, template.Must(template.New("c").Parse(configTemplate)).Execute(&cfg, Ports{
		Gateway: ports[0], ExtProc: ports[1], XDS: ports[2], Admin: ports[3], Metrics: ports[4],
		BackendA: hostPort(gw.backendA.url), BackendB: hostPort(gw.backendB.url),
	}))
	require.NoError(t, os.WriteFile(g.cfgPath, cfg.Bytes(), 0o600))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- fault gateway logs ----\n%s", g.logs.String())
		}
	})
	g.startXDS()
	g.startExtProc()
	loaded, err := config.Load(g.cfgPath)
	require.NoError(t, err)
	boot, err := envoy.Bootstrap(envoy.BootstrapOptions{NodeID: loaded.Envoy.NodeID, XDS: ports[2], Admin: ports[3]})
	require.NoError(t, err)
	bootPath := filepath.Join(dir, "envoy.yaml")
	require.NoError(t, os.WriteFile(bootPath, boot, 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	proc, err := envoy.Start(ctx, os.Getenv("ENVOY_BIN"), bootPath, "warning", g.logs)
	require.NoError(t, err)
	g.envoyPID = proc.Pid()
	t.Cleanup(func() { cancel(); <-proc.Done() })
	require.Eventually(t, func() bool { return g.serves("model-a") }, 30*time.Second, 50*time.Millisecond, "gateway never served")
	return g
}

// startXDS runs `streamgate xds` in-process; the metrics port is its own.
func (g *faultGateway) startXDS() {
	ctx, cancel := context.WithCancel(context.Background())
	g.xdsCancel, g.xdsDone = cancel, make(chan error, 1)
	cfg := filepath.Join(filepath.Dir(g.cfgPath), "xds.yaml")
	raw, err := os.ReadFile(g.cfgPath)
	require.NoError(g.t, err)
	loaded, err := config.Load(g.cfgPath)
	require.NoError(g.t, err)
	require.NoError(g.t, os.WriteFile(cfg, []byte(strings.Replace(string(raw), loaded.Metrics.Listen, g.metricsX, 1)), 0o600))
	go func() { g.xdsDone <- cli.Main(ctx, []string{"xds", "-c", cfg}, g.logs, g.logs) }()
	g.t.Cleanup(g.stopXDS)
}

func (g *faultGateway) stopXDS() {
	if g.xdsCancel != nil {
		g.xdsCancel()
		<-g.xdsDone
		g.xdsCancel = nil
	}
}

// startExtProc runs `streamgate extproc` as a child process.
func (g *faultGateway) startExtProc() {
	cmd := exec.Command(g.bin, "extproc", "-c", g.cfgPath)
	cmd.Stdout, cmd.Stderr = g.logs, g.logs
	require.NoError(g.t, cmd.Start())
	g.extproc = cmd
	g.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
}

// killExtProc SIGKILLs the ext_proc process.
func (g *faultGateway) killExtProc() {
	require.NoError(g.t, g.extproc.Process.Kill())
	_ = g.extproc.Wait()
}

func (g *faultGateway) serves(model string) bool {
	resp, err := http.Post(g.gateway+"/v1/chat/completions", "application/json", bytes.NewReader(chatBody(model, false, "x")))
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// TestFaultExtProcKilled: SIGKILL the ext_proc process under streaming
// load, restart it. No client hangs; a refused request gets Envoy's JSON
// error (500 internal_error, or 504 while the message timeout runs); an
// admitted stream whose response ext_proc was reading is cut; requests
// succeed again once the process is back.
func TestFaultExtProcKilled(t *testing.T) {
	g := startFaultGateway(t)
	cycles, clients, outage := 1, 8, time.Second
	if faultsLong() {
		cycles, clients, outage = 5, 64, 3*time.Second
	}
	ctx, stop := context.WithCancel(context.Background())
	load, wg := runFaultLoad(ctx, g.gateway, clients)
	var recoveries []time.Duration
	for range cycles {
		time.Sleep(time.Second)
		g.killExtProc()
		time.Sleep(outage)
		restarted := time.Now()
		g.startExtProc()
		require.Eventually(t, func() bool { return load.firstOKAfter(restarted) >= 0 }, 20*time.Second, 20*time.Millisecond, "no request succeeded after the restart")
		recoveries = append(recoveries, load.firstOKAfter(restarted))
	}
	time.Sleep(500 * time.Millisecond)
	stop()
	wg.Wait()

	t.Logf("ext_proc SIGKILL x%d, %d clients, %s outage each: outcomes %v; time from restart to the first success %v", cycles, clients, outage, load.outcomes, recoveries)
	assert.Zero(t, load.outcomes["hung"], "no client may hang")
	assert.Positive(t, load.outcomes["ok"])
	assert.Positive(t, load.outcomes["status 500"]+load.outcomes["status 504"]+load.outcomes["connection error"], "the outage was seen")
	for body := range load.bodies {
		var e struct {
			Error struct{ Message, Type, Code string }
		}
		require.NoError(t, json.Unmarshal([]byte(body), &e), "a non-200 body is JSON: %s", body)
		assert.Contains(t, []string{"internal_error", "gateway_timeout"}, e.Error.Code, body)
		assert.Equal(t, "server_error", e.Error.Type, body)
	}
	for _, d := range recoveries {
		assert.Less(t, d, 5*time.Second, "recovery after restart")
	}
}

// TestFaultXDSKilled: with the xDS server gone Envoy keeps serving its last
// config; when the server returns, Envoy reconnects and takes a config
// changed meanwhile.
func TestFaultXDSKilled(t *testing.T) {
	g := startFaultGateway(t)
	ctx, stop := context.WithCancel(context.Background())
	load, wg := runFaultLoad(ctx, g.gateway, 4)
	time.Sleep(500 * time.Millisecond)
	require.EqualValues(t, 1, adminStat(g.admin, "control_plane.connected_state"))
	g.stopXDS()
	killed := time.Now()
	require.Eventually(t, func() bool { return adminStat(g.admin, "control_plane.connected_state") == 0 }, 10*time.Second, 20*time.Millisecond, "Envoy never noticed the xDS server was gone")
	time.Sleep(time.Second)
	stop()
	wg.Wait()
	t.Logf("xDS down for %s: outcomes %v", time.Since(killed).Round(time.Millisecond), load.outcomes)
	assert.Equal(t, load.outcomes["ok"], sum(load.outcomes), "every request is served from the last config: %v", load.outcomes)

	// A config edit while xDS is down: ext_proc reloads it at once, Envoy
	// only once the xDS server is back.
	raw, err := os.ReadFile(g.cfgPath)
	require.NoError(t, err)
	// model-new is on a new backend: its cluster and route exist only in
	// the config the returning xDS server publishes.
	edited := strings.Replace(string(raw), "models:\n", "  - name: backend-c\n    protocol: openai\n    endpoints: ["+hostPort(gw.backendB.url)+"]\nmodels:\n  - name: model-new\n    backend: backend-c\n", 1)
	require.NoError(t, os.WriteFile(g.cfgPath, []byte(edited), 0o600))
	returned := time.Now()
	g.startXDS()
	require.Eventually(t, func() bool { return g.serves("model-new") }, 20*time.Second, 50*time.Millisecond, "the new model was never served")
	assert.EqualValues(t, 1, adminStat(g.admin, "control_plane.connected_state"), "Envoy is connected again")
	t.Logf("xDS back: the edited config served after %s", time.Since(returned).Round(time.Millisecond))
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// adminStat reads one counter or gauge from Envoy's admin /stats; -1 when
// it cannot.
func adminStat(admin, name string) int64 {
	resp, err := http.Get("http://" + admin + "/stats?filter=" + url.QueryEscape("^"+regexp.QuoteMeta(name)+"$"))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_, v, ok := strings.Cut(strings.TrimSpace(string(b)), ": ")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

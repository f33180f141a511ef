package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"text/template"

	"github.com/streamgate/streamgate/extproc/auth"
	"time"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/envoy"
	"github.com/streamgate/streamgate/examples/fakellm"
	"github.com/streamgate/streamgate/xds"
)

// backendHeader is the routing header Streamgate's routes match on; plain
// Envoy's clients send it themselves.
const backendHeader = "x-streamgate-backend"

// target is one configuration under test: where clients connect and which
// processes serve it.
type target struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Note string `json:"note,omitempty"`
	// Skipped says why the configuration was not measured.
	Skipped string `json:"skipped,omitempty"`
	// Config is the Streamgate config template it ran with.
	Config string `json:"config,omitempty"`
	// Binary is the streamgate binary it ran.
	Binary string `json:"binary,omitempty"`
	// AsksUsage says its clients send stream_options.include_usage.
	AsksUsage bool `json:"asks_usage"`

	kind     targetKind
	template string // config template text; Config names it

	url        string
	headers    http.Header
	envoyPID   int
	sgPID      int
	metricsURL string
	stop       func()
	logPath    string
	// pprof starts streamgate with -pprof (Options.ProfileDir).
	pprof bool
}

// pids lists the target's processes: Envoy first, then streamgate.
func (t *target) pids() []int {
	var out []int
	for _, p := range []int{t.envoyPID, t.sgPID} {
		if p > 0 {
			out = append(out, p)
		}
	}
	return out
}

// backend is the in-process fakellm every configuration talks to, with a
// count of the requests it is serving right now.
type backend struct {
	addr   string
	active atomic.Int64
	srv    *http.Server
}

func startBackend() (*backend, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("cannot listen for the backend: %w", err)
	}
	b := &backend{addr: lis.Addr().String()}
	fake := fakellm.New(fakellm.Options{Name: "bench"})
	b.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.active.Add(1)
			defer b.active.Add(-1)
			fake.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = b.srv.Serve(lis) }()
	return b, nil
}

func (b *backend) close() { _ = b.srv.Close() }

// templateData fills a config template.
type templateData struct {
	Gateway, ExtProc, XDS, Admin, Metrics string
	Backend                               string
	APIKey                                string
	// APIKeyHash is the config form of APIKey (sha256:...).
	APIKeyHash string
}

func renderConfig(text string, d templateData) ([]byte, error) {
	t, err := template.New("config").Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("cannot parse config template: %w", err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		return nil, fmt.Errorf("cannot render config template: %w", err)
	}
	return buf.Bytes(), nil
}

// configLabel is the text after "# bench:" on a template's first line.
func configLabel(text string) string {
	first, _, _ := strings.Cut(text, "\n")
	label, ok := strings.CutPrefix(strings.TrimSpace(first), "# bench:")
	if !ok {
		return ""
	}
	return strings.TrimSpace(label)
}

func newTemplateData(backendAddr, apiKey string) (templateData, error) {
	ports, err := freePorts(5)
	if err != nil {
		return templateData{}, err
	}
	return templateData{Gateway: ports[0], ExtProc: ports[1], XDS: ports[2], Admin: ports[3], Metrics: ports[4],
		Backend: backendAddr, APIKey: apiKey, APIKeyHash: auth.HashKey(apiKey)}, nil
}

// startPlainEnvoy runs Envoy alone with the listener, routes and clusters
// that configText yields, minus every Streamgate filter.
func startPlainEnvoy(ctx context.Context, t *target, configText, envoyBin, dir string, b *backend, apiKey string) error {
	d, err := newTemplateData(b.addr, apiKey)
	if err != nil {
		return err
	}
	raw, err := renderConfig(configText, d)
	if err != nil {
		return err
	}
	cfg, err := config.Parse(t.ID+".yaml", raw)
	if err != nil {
		return fmt.Errorf("cannot load config for %s: %w", t.ID, err)
	}
	boot, err := xds.StaticBootstrap(cfg, xds.StaticOptions{Plain: true})
	if err != nil {
		return err
	}
	bootPath := filepath.Join(dir, t.ID+"-envoy.json")
	if err := os.WriteFile(bootPath, boot, 0o600); err != nil {
		return fmt.Errorf("cannot write bootstrap: %w", err)
	}
	logs, err := os.Create(filepath.Join(dir, t.ID+".log"))
	if err != nil {
		return fmt.Errorf("cannot create log file: %w", err)
	}
	t.logPath = logs.Name()
	pctx, cancel := context.WithCancel(ctx)
	proc, err := envoy.Start(pctx, envoyBin, bootPath, "warning", logs)
	if err != nil {
		cancel()
		logs.Close()
		return err
	}
	t.envoyPID = proc.Pid()
	t.url = "http://" + d.Gateway
	t.headers = http.Header{http.CanonicalHeaderKey(backendHeader): {"bench"}}
	t.stop = func() {
		cancel()
		<-proc.Done()
		logs.Close()
	}
	return waitReady(ctx, t, apiKey, proc.Done())
}

// startStreamgate runs `streamgate run` with configText as a child process;
// Envoy is streamgate's own child.
func startStreamgate(ctx context.Context, t *target, configText, sgBin, envoyBin, dir string, b *backend, apiKey string) error {
	d, err := newTemplateData(b.addr, apiKey)
	if err != nil {
		return err
	}
	raw, err := renderConfig(configText, d)
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, t.ID+".yaml")
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		return fmt.Errorf("cannot write config: %w", err)
	}
	logs, err := os.Create(filepath.Join(dir, t.ID+".log"))
	if err != nil {
		return fmt.Errorf("cannot create log file: %w", err)
	}
	t.logPath = logs.Name()
	args := []string{"run", "-c", cfgPath, "--envoy-log-level", "warning"}
	if t.pprof {
		args = append(args, "-pprof")
	}
	cmd := exec.Command(sgBin, args...)
	cmd.Env = append(os.Environ(), "ENVOY_BIN="+envoyBin)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logs.Close()
		return fmt.Errorf("cannot start %s: %w", sgBin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.sgPID = cmd.Process.Pid
	t.url = "http://" + d.Gateway
	t.metricsURL = "http://" + d.Metrics + "/metrics"
	t.stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logs.Close()
	}
	if err := waitReady(ctx, t, apiKey, exited); err != nil {
		return err
	}
	t.envoyPID, err = findChild(t.sgPID, "envoy", 10*time.Second)
	return err
}

// waitReady polls GET /v1/models through the target until it answers 200.
func waitReady(ctx context.Context, t *target, apiKey string, exited <-chan struct{}) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("%s exited early; see %s", t.ID, t.logPath)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, t.url+"/v1/models", nil)
		setHeaders(req.Header, t, apiKey, ZeroDelay, 1)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after 60s; see %s", t.ID, t.logPath)
}

func freePorts(n int) ([]string, error) {
	out := make([]string, 0, n)
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("cannot find a free port: %w", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// raiseFileLimit lifts the soft open-files limit to the hard one, for this
// process and the gateways it starts: 1,000 held streams need ~4,000 fds.
func raiseFileLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("cannot read the open-files limit: %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("cannot raise the open-files limit: %w", err)
	}
	return nil
}

// errNotReady is returned when an idle-stream run cannot open its streams.
var errNotReady = errors.New("streams did not all reach the backend")

// target returns the report's configuration with the given id, or nil.
func (r *Report) target(id string) *target {
	for _, t := range r.Targets {
		if t.ID == id {
			return t
		}
	}
	return nil
}

// lostPortRace reports whether t failed to start because a port picked as
// free was taken before its process bound it.
func lostPortRace(t *target) bool {
	if t == nil || t.logPath == "" {
		return false
	}
	b, err := os.ReadFile(t.logPath)
	return err == nil && bytes.Contains(b, []byte("Address already in use"))
}

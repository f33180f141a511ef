package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

// requireServer skips the test when a broker the bridge tests need cannot
// run here, or fails it under STREAMGATE_REQUIRE_ALL=1 (.ci/run installs
// nats-server and fetches Kafka).
func requireServer(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("STREAMGATE_REQUIRE_ALL") == "1" {
		t.Fatalf("%s is required (STREAMGATE_REQUIRE_ALL=1): %v", what, err)
	}
	t.Skipf("no %s: %v", what, err)
}

// startNATSServer runs Debian's nats-server with JetStream on a free loopback
// port and a private store directory, until the test ends. It returns the
// server's URL.
func startNATSServer(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	requireServer(t, "nats-server (apt-get install nats-server)", err)
	ports, err := freePorts(1)
	require.NoError(t, err)
	host, port, _ := net.SplitHostPort(ports[0])
	cmd := exec.Command(bin, "-js", "-a", host, "-p", port, "-sd", filepath.Join(t.TempDir(), "js"))
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("---- nats-server ----\n%s", tail(logs.String(), 4000))
		}
	})
	waitPort(t, ports[0], 20*time.Second)
	return "nats://" + ports[0]
}

// startKafka runs Apache Kafka in KRaft mode (one broker and controller)
// from its Maven Central jars with scripts/kafka.sh, on free loopback
// ports, until the test ends. It returns the broker's address.
func startKafka(t *testing.T) string {
	t.Helper()
	_, err := exec.LookPath("java")
	requireServer(t, "java (Kafka runs on it)", err)
	script, _ := filepath.Abs("../scripts/kafka.sh")
	fetch := exec.Command(script, "fetch")
	out, err := fetch.CombinedOutput()
	requireServer(t, "Kafka (scripts/kafka.sh fetch: "+tail(string(out), 500)+")", err)
	ports, err := freePorts(2)
	require.NoError(t, err)
	_, port, _ := net.SplitHostPort(ports[0])
	_, ctrl, _ := net.SplitHostPort(ports[1])
	cmd := exec.Command(script, "start", t.TempDir(), port, ctrl)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("---- kafka ----\n%s", tail(logs.String(), 4000))
		}
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(ports[0]))
	require.NoError(t, err)
	defer cl.Close()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := cl.Ping(ctx)
		cancel()
		if err == nil {
			return ports[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("Kafka did not start in 90s: %v\n%s", err, tail(logs.String(), 4000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func waitPort(t *testing.T, addr string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s after %s", addr, limit)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:][strings.IndexByte(s[len(s)-n:], '\n')+1:]
}

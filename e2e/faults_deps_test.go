package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// daemon is a server process the test owns (a private redis-server or
// nats-server on its own port), so the test can SIGKILL, SIGSTOP and
// restart it without touching shared ones.
type daemon struct {
	t    *testing.T
	bin  string
	args []string
	addr string
	cmd  *exec.Cmd
	out  *syncBuffer
}

// requireBinary finds name on PATH; without it the test skips, or fails
// under STREAMGATE_REQUIRE_ALL=1 (.ci/run installs it).
func requireBinary(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("STREAMGATE_REQUIRE_ALL") == "1" {
			t.Fatalf("%s is not installed and STREAMGATE_REQUIRE_ALL=1 (.ci/run installs it)", name)
		}
		t.Skipf("%s is not installed (.ci/run installs it)", name)
	}
	return path
}

func startDaemon(t *testing.T, bin, addr string, args ...string) *daemon {
	d := &daemon{t: t, bin: bin, args: args, addr: addr, out: &syncBuffer{}}
	d.start()
	t.Cleanup(func() {
		if d.cmd != nil {
			_ = d.cmd.Process.Signal(syscall.SIGCONT)
			_ = d.cmd.Process.Kill()
			_ = d.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("---- %s output ----\n%s", bin, d.out.String())
		}
	})
	return d
}

func (d *daemon) start() {
	d.cmd = exec.Command(d.bin, d.args...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	require.NoError(d.t, d.cmd.Start())
	require.Eventually(d.t, func() bool {
		c, err := net.DialTimeout("tcp", d.addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "%s never listened on %s", d.bin, d.addr)
}

// kill SIGKILLs the process.
func (d *daemon) kill() {
	require.NoError(d.t, d.cmd.Process.Kill())
	_ = d.cmd.Wait()
	d.cmd = nil
}

func (d *daemon) signal(s syscall.Signal) { require.NoError(d.t, d.cmd.Process.Signal(s)) }

// redisFaultConfig: limits on a private Redis (REDIS), fail_open FAIL_OPEN;
// tenant tight may send 5 requests a minute, every other tenant many.
const redisFaultConfig = listeners + twoBackends + `models:
  - name: model-a
    backend: backend-a
limits:
  tenant_header: x-tenant
  store: redis
  redis: {address: "REDIS", timeout: 50ms, fail_open: FAIL_OPEN}
  tenants:
    - name: tight
      requests_per_minute: 5
    - name: "*"
      requests_per_minute: 100000000
      concurrent_streams: 64
`

// TestFaultRedisKilled runs a fail-closed and a fail-open gateway on one
// private Redis under streaming load, SIGKILLs Redis and restarts it, then
// SIGSTOPs it (a Redis that hangs) and resumes it. Fail-closed clients get
// 503 overloaded at once, fail-open ones are served; nobody waits on Redis
// longer than its timeout; each outage is logged once per gateway and shown
// by streamgate_ratelimit_store_outage; afterwards no reservation is held
// and limits apply again.
func TestFaultRedisKilled(t *testing.T) {
	bin := requireBinary(t, "redis-server")
	ports, err := freePorts(1)
	require.NoError(t, err)
	_, port, _ := net.SplitHostPort(ports[0])
	redis := startDaemon(t, bin, ports[0], "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	gateways := map[string]*env{}
	for _, mode := range []string{"fail_closed", "fail_open"} {
		cfg := strings.NewReplacer("REDIS", ports[0], "FAIL_OPEN", fmt.Sprint(mode == "fail_open")).Replace(redisFaultConfig)
		gateways[mode] = startGateway(t, cfg)
	}
	clients, outage := 4, 2*time.Second
	if faultsLong() {
		clients, outage = 16, 10*time.Second
	}
	for _, fault := range []string{"SIGKILL", "SIGSTOP"} {
		ctx, stop := context.WithCancel(context.Background())
		loads := map[string]*faultLoad{}
		var waits []func()
		for mode, e := range gateways {
			l, wg := runLoad(ctx, loadSpec{gateway: e.gateway, clients: clients, model: "model-a", pause: 20 * time.Millisecond})
			loads[mode] = l
			waits = append(waits, wg.Wait)
		}
		time.Sleep(500 * time.Millisecond)
		if fault == "SIGKILL" {
			redis.kill()
		} else {
			redis.signal(syscall.SIGSTOP)
		}
		require.Eventually(t, func() bool { return metric(t, gateways["fail_closed"], "streamgate_ratelimit_store_outage") == 1 },
			5*time.Second, 20*time.Millisecond, "the outage metric never rose")
		time.Sleep(outage)
		restored := time.Now()
		if fault == "SIGKILL" {
			redis.start()
		} else {
			redis.signal(syscall.SIGCONT)
		}
		var back time.Duration
		require.Eventually(t, func() bool {
			back = loads["fail_closed"].firstOKAfter(restored)
			return back >= 0
		}, 15*time.Second, 20*time.Millisecond, "fail-closed requests never succeeded again")
		// Both gateways must see this outage end before the next one
		// starts, or the fail-open one counts the two as one outage.
		for _, e := range gateways {
			waitMetric(t, e, "streamgate_ratelimit_store_outage", 0)
		}
		time.Sleep(300 * time.Millisecond)
		stop()
		for _, w := range waits {
			w()
		}
		for mode, l := range loads {
			t.Logf("Redis %s for %s, %s, %d clients: outcomes %v, slowest %v", fault, outage, mode, clients, l.outcomes, l.slowest)
			assert.Zero(t, l.outcomes["hung"], mode)
			for outcome, d := range l.slowest {
				assert.Less(t, d, 2*time.Second, "%s: no %s request waited on Redis", mode, outcome)
			}
		}
		t.Logf("Redis %s: fail-closed requests served again %s after Redis was back", fault, back.Round(time.Millisecond))
		assert.Equal(t, loads["fail_open"].outcomes["ok"], sum(loads["fail_open"].outcomes), "fail_open serves every request")
		closed := loads["fail_closed"]
		assert.Positive(t, closed.outcomes["status 503"], "fail_closed refuses during the outage")
		assert.Equal(t, closed.outcomes["ok"]+closed.outcomes["status 503"], sum(closed.outcomes), "fail_closed: served or 503")
		for body := range closed.bodies {
			var e struct{ Error struct{ Type, Code string } }
			require.NoError(t, json.Unmarshal([]byte(body), &e), body)
			assert.Equal(t, "overloaded", e.Error.Code, body)
		}
	}
	for mode, e := range gateways {
		waitMetric(t, e, "streamgate_ratelimit_store_outage", 0)
		waitMetric(t, e, "streamgate_reservations_outstanding", 0)
		waitMetric(t, e, "streamgate_ratelimit_holds_outstanding", 0)
		logged := strings.Count(e.logs.String(), "rate limit store unreachable")
		assert.Equal(t, 2, logged, "%s: each of the two outages logged once", mode)
		assert.Equal(t, 2, strings.Count(e.logs.String(), "rate limit store reachable again"), "%s: each recovery logged once", mode)
	}
	// Limits resume, shared again: tight's five requests of the minute
	// pass on one gateway, its sixth is refused on the other.
	var codes []int
	for i := range 6 {
		e := gateways["fail_closed"]
		if i == 5 {
			e = gateways["fail_open"]
		}
		resp, err := postTo(t.Context(), e, chatBody("model-a", false, "x"), map[string]string{"x-tenant": "tight"})
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	assert.Equal(t, []int{200, 200, 200, 200, 200, 429}, codes, "limits apply again")
}

// natsFaultConfig: usage events published with JetStream to a private
// nats-server (NATSURL), at most 256 waiting.
const natsFaultConfig = listeners + twoBackends + `models:
  - name: model-a
    backend: backend-a
telemetry:
  usage: true
  nats: {url: NATSURL, subject: streamgate.usage, jetstream: true, buffer: 256}
`

// TestFaultNATSKilled SIGKILLs the nats-server the usage events go to
// under streaming load and restarts it, then SIGSTOPs it (a server that
// hangs) and resumes it. Requests are unaffected (all served, none
// slower); events that cannot be sent are counted as failed or dropped,
// never held without bound; events flow again once the server is back.
func TestFaultNATSKilled(t *testing.T) {
	bin := requireBinary(t, "nats-server")
	ports, err := freePorts(1)
	require.NoError(t, err)
	host, port, _ := net.SplitHostPort(ports[0])
	store := t.TempDir()
	ns := startDaemon(t, bin, ports[0], "-a", host, "-p", port, "-js", "-sd", store)
	url := "nats://" + ports[0]
	events := watchUsageEvents(t, url)
	e := startGateway(t, strings.Replace(natsFaultConfig, "NATSURL", url, 1))

	clients, outage := 4, 2*time.Second
	if faultsLong() {
		clients, outage = 16, 10*time.Second
	}
	require.Eventually(t, func() bool { return events.firstAfter(time.Time{}) >= 0 }, 10*time.Second, 20*time.Millisecond, "no usage event arrived")
	lost := func() float64 {
		failed, _ := scrapeSample(t, e, `streamgate_usage_events_total{outcome="failed"}`)
		dropped, _ := scrapeSample(t, e, `streamgate_usage_events_total{outcome="dropped"}`)
		return failed + dropped
	}
	requests := 0
	for _, fault := range []string{"SIGKILL", "SIGSTOP"} {
		ctx, stop := context.WithCancel(context.Background())
		load, wg := runLoad(ctx, loadSpec{gateway: e.gateway, clients: clients, model: "model-a"})
		time.Sleep(500 * time.Millisecond)
		lost0 := lost()
		if fault == "SIGKILL" {
			ns.kill()
		} else {
			ns.signal(syscall.SIGSTOP)
		}
		// A hung server holds each JetStream publish for its 2 s timeout:
		// stay hung long enough for the sink's queue to fill.
		pause := outage
		if fault == "SIGSTOP" {
			pause = max(outage, 5*time.Second)
		}
		time.Sleep(pause)
		if fault == "SIGKILL" {
			ns.start()
		} else {
			ns.signal(syscall.SIGCONT)
		}
		back := time.Now()
		require.Eventually(t, func() bool { return events.firstAfter(back) >= 0 }, 20*time.Second, 20*time.Millisecond, "events never resumed after %s", fault)
		time.Sleep(500 * time.Millisecond)
		stop()
		wg.Wait()
		requests += sum(load.outcomes)
		published, _ := scrapeSample(t, e, `streamgate_usage_events_total{outcome="published"}`)
		t.Logf("NATS %s for %s under %d clients: outcomes %v, slowest %v; %v events lost (failed or dropped), %v published in all; events again %s after it was back",
			fault, pause, clients, load.outcomes, load.slowest, lost()-lost0, published, events.firstAfter(back).Round(time.Millisecond))
		assert.Equal(t, load.outcomes["ok"], sum(load.outcomes), "%s: every request is served while NATS is down", fault)
		assert.Less(t, load.slowest["ok"], 2*time.Second, "%s: no request waits on NATS", fault)
		assert.Positive(t, lost()-lost0, "%s: events during the outage are counted as lost, not held", fault)
		assert.LessOrEqual(t, published+lost(), float64(requests), "one event per request at most")
	}
	assert.Equal(t, 2, strings.Count(e.logs.String(), `"msg":"cannot publish usage event`), "each outage is logged once")
	assert.Equal(t, 2, strings.Count(e.logs.String(), `"msg":"publishing usage events again"`), "each recovery is logged once")
}

// usageEvents are the arrival times of the usage events a test saw.
type usageEvents struct {
	mu sync.Mutex
	at []time.Time
}

// firstAfter is how long after t the first event arrived; -1 if none yet.
func (u *usageEvents) firstAfter(t time.Time) time.Duration {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, a := range u.at {
		if !a.Before(t) {
			return a.Sub(t)
		}
	}
	return -1
}

// watchUsageEvents creates the stream capturing the usage subject (kept
// in the server's store across restarts) and records the events that
// arrive on it through a core subscription that reconnects.
func watchUsageEvents(t *testing.T, url string) *usageEvents {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "USAGE", Subjects: []string{"streamgate.usage"}})
	require.NoError(t, err)
	u := &usageEvents{}
	_, err = nc.Subscribe("streamgate.usage", func(*nats.Msg) {
		u.mu.Lock()
		u.at = append(u.at, time.Now())
		u.mu.Unlock()
	})
	require.NoError(t, err)
	return u
}

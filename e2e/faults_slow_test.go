package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// slowReaderConfig: ext_proc reads every response (telemetry.usage, read
// inline by a separate ext_proc process) and holds a concurrency slot;
// streams idle 6 s are ended. Request bodies are capped at 1 MiB: Envoy
// gives the whole stream the route's buffer limit (max_request_body_bytes),
// so the cap also bounds what a stalled response may hold
// (docs/reliability.md).
var slowReaderConfig = strings.Replace(listeners, "gateway:\n", "gateway:\n  stream_idle_timeout: 6s\n  max_request_body_bytes: "+strconv.Itoa(slowReaderBufferLimit)+"\n", 1) + twoBackends + `models:
  - name: model-a
    backend: backend-a
limits:
  tenant_header: x-tenant
  tenants:
    - name: "*"
      concurrent_streams: 200
telemetry:
  usage: true
`

// slowReaderBufferLimit is the stream buffer limit of slowReaderConfig.
const slowReaderBufferLimit = 1 << 20

// memory is a process's resident set and, for Envoy, its allocator's
// view, read live from /memory: the server.memory_allocated gauge is
// refreshed only at each stats flush (5 s), so it can still show streams
// already gone or miss streams just stalled.
type memory struct{ envoyRSS, envoyAllocated, streamgateRSS, streamgateHeap int64 }

func (g *faultGateway) memory(t *testing.T) memory {
	heap, _ := scrapeSample(t, &env{metrics: g.metrics}, "go_memstats_heap_inuse_bytes")
	return memory{envoyRSS: rss(g.envoyPID), envoyAllocated: envoyAllocated(t, "http://"+g.admin),
		streamgateRSS: rss(g.extproc.Process.Pid), streamgateHeap: int64(heap)}
}

func (m memory) String() string {
	return fmt.Sprintf("Envoy RSS %.1f MiB (allocated %.1f MiB), Streamgate RSS %.1f MiB (heap in use %.1f MiB)",
		mib(m.envoyRSS), mib(m.envoyAllocated), mib(m.streamgateRSS), mib(m.streamgateHeap))
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// rss is a process's resident set in bytes, from /proc; -1 when unknown.
func rss(pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return -1
}

// slowReader sends a request for a very long stream, reads the response
// headers, then stops reading with the connection open.
func slowReader(t *testing.T, addr string) net.Conn {
	body := string(chatBody("model-a", true, "slow"))
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\nx-fakellm-tokens: 1000000\r\nx-fakellm-itl-ms: 0\r\ncontent-length: %d\r\n\r\n%s", len(body), body)
	br := bufio.NewReader(c)
	status, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, status, " 200 ", status)
	return c
}

// TestFaultSlowReaders: clients that stop reading long streams. Envoy's
// flow control pauses the backend (Envoy stops reading from it, so it
// stops sending) and Envoy's and Streamgate's memory stay bounded by the
// buffers; a client that disconnects frees its stream at once; one that
// stays connected without reading is cut at stream_idle_timeout.
// Afterwards nothing is held. make test runs it with ext_proc reading
// every response; make faults also with pass-through streams.
func TestFaultSlowReaders(t *testing.T) {
	configs := []string{"ext_proc reads the response"}
	if faultsLong() {
		configs = append(configs, "pass-through")
	}
	for _, name := range configs {
		t.Run(name, func(t *testing.T) {
			cfg := slowReaderConfig
			if name == "pass-through" {
				cfg = strings.Replace(cfg, "telemetry:\n  usage: true\n", "", 1)
			}
			testSlowReaders(t, startFaultGatewayWith(t, cfg))
		})
	}
}

func testSlowReaders(t *testing.T, g *faultGateway) {
	n := 8
	if faultsLong() {
		n = 64
	}
	before := g.memory(t)
	cancelled0 := gw.backendA.Stats().Cancelled
	addr := strings.TrimPrefix(g.gateway, "http://")
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = slowReader(t, addr)
	}
	stalled := time.Now()
	// The backend is paused once Envoy stops reading from it: the bytes it
	// received stop growing (the kernel's socket buffers fill first).
	rx := func() int64 { return adminStat(g.admin, "cluster.backend-a.upstream_cx_rx_bytes_total") }
	last, pausedAt := rx(), time.Time{}
	for pausedAt.IsZero() && time.Since(stalled) < 20*time.Second {
		time.Sleep(500 * time.Millisecond)
		now := rx()
		if now == last {
			pausedAt = time.Now().Add(-500 * time.Millisecond)
		}
		last = now
	}
	require.False(t, pausedAt.IsZero(), "the backend was never paused: Envoy kept reading from it")
	during := g.memory(t)
	paused := adminStat(g.admin, "cluster.backend-a.upstream_flow_control_paused_reading_total")
	t.Logf("%d slow readers: backend paused %s after they stopped reading, %.1f MiB received from it in all (most in the kernel's socket buffers); upstream reads paused %d times",
		n, pausedAt.Sub(stalled).Round(100*time.Millisecond), mib(last), paused)
	t.Logf("memory before: %s", before)
	t.Logf("memory stalled: %s", during)
	assert.Positive(t, paused, "Envoy paused reading from the backend")
	// Each stalled stream may hold its stream buffer (the route's limit),
	// Envoy's per-connection buffers on both sides (1 MiB each by default)
	// and the ext_proc chunk in flight.
	assert.Less(t, during.envoyAllocated-before.envoyAllocated, int64(n)*(slowReaderBufferLimit+3<<20)+8<<20, "Envoy's memory is bounded by its buffers")
	assert.Less(t, during.streamgateRSS-before.streamgateRSS, int64(n)*2<<20+32<<20, "Streamgate's memory is bounded")

	// Half the clients leave: their backend streams end at once.
	for _, c := range conns[:n/2] {
		c.Close()
	}
	left := time.Now()
	require.Eventually(t, func() bool { return gw.backendA.Stats().Cancelled-cancelled0 >= int64(n/2) }, 10*time.Second, 10*time.Millisecond,
		"the backend streams of clients that left were not ended")
	t.Logf("%d clients left: their backend streams ended within %s", n/2, time.Since(left).Round(time.Millisecond))
	// The others stay connected without reading: stream_idle_timeout ends them.
	require.Eventually(t, func() bool { return gw.backendA.Stats().Cancelled-cancelled0 >= int64(n) }, 30*time.Second, 50*time.Millisecond,
		"the stalled streams were never ended")
	t.Logf("the %d clients still connected were cut %s after the backend was paused (stream_idle_timeout 6s)", n-n/2, time.Since(pausedAt).Round(100*time.Millisecond))

	assertNothingHeld(t, &env{metrics: g.metrics, admin: "http://" + g.admin})
	time.Sleep(time.Second)
	after := g.memory(t)
	t.Logf("memory after: %s", after)
	assert.Less(t, after.envoyAllocated-before.envoyAllocated, int64(4<<20), "Envoy's buffers are freed: nothing is kept per stream")
}

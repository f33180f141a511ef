package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// edgeConfig bounds what one client connection may hold (issue 23,
// finding 7): streams per HTTP/2 connection, time for headers and body,
// and a tenant concurrency limit taken at the headers.
const edgeConfig = `gateway:
  listen: {{.Gateway}}
  max_concurrent_streams: 30
  request_headers_timeout: 2s
  request_body_timeout: 10s
extproc:
  listen: {{.ExtProc}}
xds:
  listen: {{.XDS}}
envoy:
  admin: {{.Admin}}
metrics:
  listen: {{.Metrics}}
` + twoBackends + `models:
  - {name: model-a, backend: backend-a}
limits:
  tenant_header: x-tenant
  queue: {size: 100, max_wait: 200ms}
  tenants:
    - {name: greedy, concurrent_streams: 20}
`

// TestUploadsBoundedBeforeBody is finding 7: one HTTP/2 connection opening
// many streams with large bodies that never finish. The tenant's
// concurrent_streams refuses the 21st at its headers while the others are
// still uploading, the connection is capped at max_concurrent_streams, the
// body timeout ends the stuck uploads, and every slot comes back.
func TestUploadsBoundedBeforeBody(t *testing.T) {
	e := startGateway(t, edgeConfig)
	const chunk = 16 << 10
	a := dialH2C(t, hostPort(e.gateway))
	require.Equal(t, uint32(30), a.serverMaxStreams(t), "SETTINGS_MAX_CONCURRENT_STREAMS")
	var greedy []uint32
	for range 20 {
		greedy = append(greedy, a.openUpload(t, "greedy", 7_000_000, chunk))
	}
	waitMetric(t, e, "streamgate_ratelimit_holds_outstanding", 20)
	extra := a.openUpload(t, "greedy", 7_000_000, 0)
	ev := a.wait(t, extra, 3*time.Second)
	assert.Equal(t, http.StatusTooManyRequests, ev.status, "the 21st stream is refused at its headers: %+v", ev)
	a.reset(extra) // what a client does with an upload the server refused
	for _, id := range greedy {
		_, done := a.event(id)
		assert.False(t, done, "stream %d is still uploading", id)
	}
	waitMetric(t, e, "streamgate_extproc_streams_open", 20)

	// A client opening more streams than the connection allows loses the
	// connection (Envoy treats it as a protocol error, as nghttp2 does).
	b := dialH2C(t, hostPort(e.gateway))
	require.Equal(t, uint32(30), b.serverMaxStreams(t))
	for range 30 {
		b.openUpload(t, "free", 7_000_000, chunk)
	}
	waitMetric(t, e, "streamgate_extproc_streams_open", 50)
	b.openUpload(t, "free", 7_000_000, 0)
	b.waitClosed(t, 3*time.Second)
	waitMetric(t, e, "streamgate_extproc_streams_open", 20)

	// The body timeout ends the stuck uploads with 408.
	for _, id := range greedy {
		ev := a.wait(t, id, 15*time.Second)
		assert.Equal(t, http.StatusRequestTimeout, ev.status, "stream %d: %+v", id, ev)
	}
	waitMetric(t, e, "streamgate_ratelimit_holds_outstanding", 0)
	waitMetric(t, e, "streamgate_reservations_outstanding", 0)
	waitMetric(t, e, "streamgate_extproc_streams_open", 0)

	// The tenant's slots are all back: a whole request goes through.
	resp, err := postTo(t.Context(), e, []byte(`{"model":"model-a","messages":[{"role":"user","content":"hi"}]}`), map[string]string{"x-tenant": "greedy"})
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestStuckRequestHeadersTimeOut: headers that never finish get a 408
// OpenAI error after request_headers_timeout.
func TestStuckRequestHeadersTimeOut(t *testing.T) {
	e := startGateway(t, edgeConfig)
	conn, err := net.Dial("tcp", hostPort(e.gateway))
	require.NoError(t, err)
	defer conn.Close()
	began := time.Now()
	_, err = io.WriteString(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "Envoy answers stuck headers")
	defer resp.Body.Close()
	assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	assert.GreaterOrEqual(t, time.Since(began), 1500*time.Millisecond)
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	assert.Equal(t, "request_timeout", body.Error.Code)
}

// h2event is what the server did to one stream: answered with a status,
// or reset it.
type h2event struct {
	status int
	reset  bool
	code   http2.ErrCode
}

// h2c is a raw HTTP/2 cleartext client that opens streams and never
// finishes their bodies, which net/http cannot be made to do per stream.
type h2c struct {
	conn net.Conn
	host string

	wmu  sync.Mutex // guards fr's writes, enc and hbuf
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
	next uint32

	mu         sync.Mutex
	window     int // connection flow-control window left to send in
	maxStreams uint32
	readErr    error
	goAway     http2.ErrCode
	settings   chan struct{}
	events     map[uint32]h2event
}

func dialH2C(t *testing.T, host string) *h2c {
	t.Helper()
	conn, err := net.Dial("tcp", host)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	c := &h2c{conn: conn, host: host, next: 1, window: 65535, settings: make(chan struct{}), events: map[uint32]h2event{}}
	c.fr = http2.NewFramer(conn, conn)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.enc = hpack.NewEncoder(&c.hbuf)
	_, err = io.WriteString(conn, http2.ClientPreface)
	require.NoError(t, err)
	require.NoError(t, c.fr.WriteSettings())
	go c.read()
	return c
}

// read records the server's settings and its answers to each stream,
// acknowledging settings and pings, until the connection closes.
func (c *h2c) read() {
	sawSettings := false
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			c.mu.Unlock()
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			c.mu.Lock()
			if v, ok := f.Value(http2.SettingMaxConcurrentStreams); ok {
				c.maxStreams = v
			}
			c.mu.Unlock()
			c.write(func() error { return c.fr.WriteSettingsAck() })
			if !sawSettings {
				sawSettings = true
				close(c.settings)
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				c.mu.Lock()
				c.window += int(f.Increment)
				c.mu.Unlock()
			}
		case *http2.GoAwayFrame:
			c.mu.Lock()
			c.goAway = f.ErrCode
			c.mu.Unlock()
		case *http2.PingFrame:
			if !f.IsAck() {
				c.write(func() error { return c.fr.WritePing(true, f.Data) })
			}
		case *http2.MetaHeadersFrame:
			if s, err := strconv.Atoi(f.PseudoValue("status")); err == nil {
				c.record(f.StreamID, h2event{status: s})
			}
		case *http2.RSTStreamFrame:
			c.mu.Lock()
			if _, answered := c.events[f.StreamID]; !answered {
				c.events[f.StreamID] = h2event{reset: true, code: f.ErrCode}
			}
			c.mu.Unlock()
		}
	}
}

func (c *h2c) record(id uint32, ev h2event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, seen := c.events[id]; !seen {
		c.events[id] = ev
	}
}

func (c *h2c) write(fn func() error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = fn()
}

func (c *h2c) serverMaxStreams(t *testing.T) uint32 {
	t.Helper()
	select {
	case <-c.settings:
	case <-time.After(5 * time.Second):
		t.Fatal("no SETTINGS from the server")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxStreams
}

// openUpload opens a chat request announcing contentLength bytes for
// tenant and sends only the first firstChunk of them.
func (c *h2c) openUpload(t *testing.T, tenant string, contentLength, firstChunk int) uint32 {
	t.Helper()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	id := c.next
	c.next += 2
	c.hbuf.Reset()
	for _, kv := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":authority", c.host}, {":path", "/v1/chat/completions"},
		{"content-type", "application/json"}, {"content-length", strconv.Itoa(contentLength)}, {"x-tenant", tenant},
	} {
		require.NoError(t, c.enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]}))
	}
	require.NoError(t, c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndHeaders: true}))
	if firstChunk > 0 {
		c.reserveWindow(t, firstChunk)
		data := append([]byte(`{"model":"model-a","messages":[{"role":"user","content":"`), bytes.Repeat([]byte("x"), firstChunk)...)
		require.NoError(t, c.fr.WriteData(id, false, data[:firstChunk]))
	}
	return id
}

// reserveWindow waits until the connection window has n bytes and takes
// them (Envoy grows it from 64 KiB with a WINDOW_UPDATE after SETTINGS).
func (c *h2c) reserveWindow(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		if c.window >= n {
			c.window -= n
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		require.True(t, time.Now().Before(deadline), "no connection window for %d bytes", n)
		time.Sleep(5 * time.Millisecond)
	}
}

// reset cancels stream id.
func (c *h2c) reset(id uint32) {
	c.write(func() error { return c.fr.WriteRSTStream(id, http2.ErrCodeCancel) })
}

// waitClosed fails unless the server ends the connection within limit.
func (c *h2c) waitClosed(t *testing.T, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		closed := c.readErr != nil || c.goAway != 0
		c.mu.Unlock()
		if closed {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the connection is still open after %s", limit)
}

func (c *h2c) event(id uint32) (h2event, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ev, ok := c.events[id]
	return ev, ok
}

// wait returns what the server did to stream id, failing after limit.
func (c *h2c) wait(t *testing.T, id uint32, limit time.Duration) h2event {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if ev, ok := c.event(id); ok {
			return ev
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("stream %d: no answer in %s", id, limit)
	return h2event{}
}

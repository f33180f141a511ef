package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakellm"
	"github.com/streamgate/streamgate/extproc/auth"
)

// Secrets of the realtime gateway. None may appear in a log line.
const (
	rtKeyAcme  = "sk-e2e-rt-acme-2c4e6a8b0d"
	rtKeyGuest = "sk-e2e-rt-guest-7d9f1b3c5e"
	rtKeySmall = "sk-e2e-rt-small-1a3c5e7b9d"
	rtUpstream = "rt-upstream-secret-6b8d0f2a4c"
)

// realtimeConfig: one OpenAI backend (a fakellm requiring rtUpstream) for
// a realtime model with an upstream name; acme may use it with one session at a
// time; guest may not.
const realtimeConfig = listeners + `backends:
  - name: rt
    protocol: openai
    endpoints: [%[1]s]
    credential: {header: authorization, env: SG_E2E_RT_UPSTREAM}
models:
  - name: gpt-realtime
    backend: rt
    upstream_model: fake-realtime-1
  - name: model-b
    backend: rt
auth:
  tenants:
    - name: acme
      models: ["*"]
      api_keys: [{hash: %[2]s}]
    - name: guest
      models: [model-b]
      api_keys: [{hash: %[3]s}]
    - name: small
      models: ["*"]
      api_keys: [{hash: %[4]s}]
limits:
  tenants:
    - name: acme
      concurrent_streams: 1
    - name: small
      total_tokens_per_minute: 40
    - name: "*"
      requests_per_minute: 1000
`

type realtimeGateway struct {
	*env
	backend *fakellm.Server
}

func startRealtimeGateway(t *testing.T) *realtimeGateway {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b := fakellm.New(fakellm.Options{Name: "rt", APIKey: rtUpstream})
	srv := &http.Server{Handler: b}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Close() })
	t.Setenv("SG_E2E_RT_UPSTREAM", rtUpstream)
	cfg := fmt.Sprintf(realtimeConfig, lis.Addr().String(), auth.HashKey(rtKeyAcme), auth.HashKey(rtKeyGuest), auth.HashKey(rtKeySmall))
	return &realtimeGateway{env: startGateway(t, cfg), backend: b}
}

// dial opens a Realtime session through the gateway, with the key in the
// subprotocol (as the OpenAI browser clients send it) or as a bearer.
func (g *realtimeGateway) dial(ctx context.Context, model, key string, subprotocol bool) (*websocket.Conn, *http.Response, error) {
	opts := &websocket.DialOptions{HTTPHeader: http.Header{}}
	if subprotocol {
		opts.Subprotocols = []string{"realtime", "openai-insecure-api-key." + key, "openai-beta.realtime-v1"}
	} else if key != "" {
		opts.HTTPHeader.Set("Authorization", "Bearer "+key)
	}
	url := strings.Replace(g.gateway, "http://", "ws://", 1) + "/v1/realtime?model=" + model
	return websocket.Dial(ctx, url, opts)
}

// readEvent reads one server event.
func readEvent(t *testing.T, ctx context.Context, c *websocket.Conn) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	typ, msg, err := c.Read(ctx)
	require.NoError(t, err)
	require.Equal(t, websocket.MessageText, typ)
	var ev map[string]any
	require.NoError(t, json.Unmarshal(msg, &ev))
	return ev
}

// refusedJSON asserts a refused handshake got status with an OpenAI error.
func refusedJSON(t *testing.T, resp *http.Response, err error, status int, code string) {
	t.Helper()
	require.Error(t, err)
	require.NotNil(t, resp, "the refusal must be an HTTP answer before the upgrade: %v", err)
	assert.Equal(t, status, resp.StatusCode)
	var body struct {
		Error struct {
			Message, Type string
			Code          *string
		}
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	assert.NotEmpty(t, body.Error.Message)
	if code != "" && assert.NotNil(t, body.Error.Code) {
		assert.Equal(t, code, *body.Error.Code)
	}
}

func TestRealtime(t *testing.T) {
	g := startRealtimeGateway(t)
	ctx := t.Context()

	t.Run("missing or wrong key is refused with 401 before the upgrade", func(t *testing.T) {
		for name, key := range map[string]string{"no key": "", "wrong key": "sk-e2e-rt-wrong"} {
			t.Run(name, func(t *testing.T) {
				_, resp, err := g.dial(ctx, "gpt-realtime", key, key != "")
				refusedJSON(t, resp, err, http.StatusUnauthorized, "")
			})
		}
		assert.Zero(t, g.backend.RealtimeStats().Sessions)
	})

	t.Run("a model the tenant may not use is refused with 403", func(t *testing.T) {
		_, resp, err := g.dial(ctx, "gpt-realtime", rtKeyGuest, false)
		require.Error(t, err)
		require.NotNil(t, resp)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	})

	t.Run("missing model is refused with 400", func(t *testing.T) {
		_, resp, err := g.dial(ctx, "", rtKeyAcme, false)
		refusedJSON(t, resp, err, http.StatusBadRequest, "")
	})

	t.Run("an upgrade on another endpoint is refused", func(t *testing.T) {
		url := strings.Replace(g.gateway, "http://", "ws://", 1) + "/v1/chat/completions"
		_, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + rtKeyAcme}}})
		refusedJSON(t, resp, err, http.StatusMethodNotAllowed, "")
	})

	for name, sub := range map[string]bool{"subprotocol key": true, "bearer key": false} {
		t.Run("events echo both ways with a "+name, func(t *testing.T) {
			c, resp, err := g.dial(ctx, "gpt-realtime", rtKeyAcme, sub)
			require.NoError(t, err)
			defer c.CloseNow()
			assert.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
			created := readEvent(t, ctx, c)
			assert.Equal(t, "session.created", created["type"])
			// The public name was rewritten to the upstream model name.
			assert.Equal(t, "fake-realtime-1", created["session"].(map[string]any)["model"])
			for i := range 3 {
				ev := fmt.Sprintf(`{"type":"conversation.item.create","event_id":"c%d","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"hi %d"}]}}`, i, i)
				require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(ev)))
				got := readEvent(t, ctx, c)
				assert.Equal(t, "conversation.item.create.echo", got["type"])
				echoed, _ := json.Marshal(got["event"])
				assert.JSONEq(t, ev, string(echoed), "frames pass untouched")
			}
			audio := []byte{0, 1, 2, 250, 251, 252}
			require.NoError(t, c.Write(ctx, websocket.MessageBinary, audio))
			typ, msg, err := c.Read(ctx)
			require.NoError(t, err)
			assert.Equal(t, websocket.MessageBinary, typ)
			assert.Equal(t, audio, msg)
			if sub {
				assert.Equal(t, "realtime", c.Subprotocol())
			}
			last := g.backend.RealtimeStats()
			assert.Equal(t, "fake-realtime-1", last.LastModel)
			assert.NotContains(t, last.LastProtocols, rtKeyAcme, "the client's key never goes upstream")
			require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
		})
	}

	t.Run("a second session is refused with 429 while the first is open and admitted after it closes", func(t *testing.T) {
		first, _, err := g.dial(ctx, "gpt-realtime", rtKeyAcme, true)
		require.NoError(t, err)
		defer first.CloseNow()
		readEvent(t, ctx, first)
		c, resp, err := g.dial(ctx, "gpt-realtime", rtKeyAcme, true)
		if err == nil {
			c.CloseNow()
		}
		refusedJSON(t, resp, err, http.StatusTooManyRequests, "")
		assert.NotEmpty(t, resp.Header.Get("retry-after"))
		require.NoError(t, first.Close(websocket.StatusNormalClosure, ""))
		second := dialEventually(t, g, ctx)
		second.CloseNow()
	})

	t.Run("a client disconnect closes the upstream and frees the slot", func(t *testing.T) {
		waitOpen(t, g.backend, 0)
		c, _, err := g.dial(ctx, "gpt-realtime", rtKeyAcme, true)
		require.NoError(t, err)
		readEvent(t, ctx, c)
		waitOpen(t, g.backend, 1)
		c.CloseNow() // the TCP connection drops, no close frame
		waitOpen(t, g.backend, 0)
		next := dialEventually(t, g, ctx)
		next.CloseNow()
		waitMetric(t, g.env, "streamgate_reservations_outstanding", 0)
	})

	t.Run("sessions, their duration and bytes reach the metrics", func(t *testing.T) {
		series := `streamgate_realtime_sessions_total{backend="rt",model="gpt-realtime",status="101"}`
		deadline := time.Now().Add(5 * time.Second)
		for metricValue(get(t, g.metrics+"/metrics"), series) < 4 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		body := get(t, g.metrics+"/metrics")
		assert.GreaterOrEqual(t, metricValue(body, series), 4.0)
		assert.Greater(t, metricValue(body, `streamgate_realtime_bytes_total{backend="rt",direction="request",model="gpt-realtime"}`), 0.0)
		assert.Greater(t, metricValue(body, `streamgate_realtime_bytes_total{backend="rt",direction="response",model="gpt-realtime"}`), 0.0)
		assert.GreaterOrEqual(t, metricValue(body, `streamgate_realtime_session_duration_seconds_count{backend="rt",model="gpt-realtime"}`), 4.0)
	})

	t.Run("no secret is ever logged", func(t *testing.T) {
		logs := g.logs.String()
		for _, s := range []string{rtKeyAcme, rtKeyGuest, rtKeySmall, rtUpstream} {
			assert.NotContains(t, logs, s)
		}
	})
}

// dialEventually opens a session once the previous one's slot is free:
// Envoy ends the ext_proc stream (and so releases the slot) just after
// the session closes.
func dialEventually(t *testing.T, g *realtimeGateway, ctx context.Context) *websocket.Conn {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, resp, err := g.dial(ctx, "gpt-realtime", rtKeyAcme, true)
		if err == nil {
			readEvent(t, ctx, c)
			return c
		}
		require.NotNil(t, resp, "dial: %v", err)
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		require.True(t, time.Now().Before(deadline), "the slot was not freed within 5 s of the session's end")
		time.Sleep(20 * time.Millisecond)
	}
}

// waitOpen waits until the backend has want sessions open.
func waitOpen(t *testing.T, b *fakellm.Server, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.RealtimeStats().Open != want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	require.Equal(t, want, b.RealtimeStats().Open)
}

// TestRealtimeOnAnOpenGateway: without auth or limits a session is routed
// by its model alone, frames echo, and the session's end is logged with
// its duration and bytes.
func TestRealtimeOnAnOpenGateway(t *testing.T) {
	ctx := t.Context()
	url := strings.Replace(gw.gateway, "http://", "ws://", 1) + "/v1/realtime?model=model-a"
	c, resp, err := websocket.Dial(ctx, url, nil)
	require.NoError(t, err)
	defer c.CloseNow()
	assert.Equal(t, "backend-a", resp.Header.Get(fakellm.HeaderBackend))
	created := readEvent(t, ctx, c)
	assert.Equal(t, "upstream-a", created["session"].(map[string]any)["model"])
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(`{"type":"input_audio_buffer.commit"}`)))
	assert.Equal(t, "input_audio_buffer.commit.echo", readEvent(t, ctx, c)["type"])
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
	line := waitLogLine(t, gw, func(l map[string]any) bool { return l["endpoint"] == "/v1/realtime" && l["model"] == "model-a" })
	assert.Equal(t, 101.0, line["status"])
	assert.Equal(t, "/v1/realtime", line["endpoint"])
	assert.Equal(t, "model-a", line["model"])
	assert.Greater(t, line["bytes_received"].(float64), 0.0)
	assert.Greater(t, line["bytes_sent"].(float64), 0.0)
}

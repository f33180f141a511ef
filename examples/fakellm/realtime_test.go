package fakellm_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakellm"
)

func TestRealtimeFake(t *testing.T) {
	s := fakellm.New(fakellm.Options{APIKey: "sk-fake"})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	base := strings.Replace(srv.URL, "http://", "ws://", 1) + fakellm.RealtimePath
	ctx := t.Context()

	t.Run("refuses a wrong key and a missing model before the upgrade", func(t *testing.T) {
		for name, tc := range map[string]struct {
			url    string
			protos []string
			status int
		}{
			"no key":    {url: base + "?model=m", status: http.StatusUnauthorized},
			"wrong key": {url: base + "?model=m", protos: []string{"realtime", "openai-insecure-api-key.sk-nope"}, status: http.StatusUnauthorized},
			"no model":  {url: base, protos: []string{"realtime", "openai-insecure-api-key.sk-fake"}, status: http.StatusBadRequest},
		} {
			t.Run(name, func(t *testing.T) {
				_, resp, err := websocket.Dial(ctx, tc.url, &websocket.DialOptions{Subprotocols: tc.protos})
				require.Error(t, err)
				require.NotNil(t, resp)
				assert.Equal(t, tc.status, resp.StatusCode)
			})
		}
	})

	t.Run("sends session.created and echoes text and binary frames", func(t *testing.T) {
		c, _, err := websocket.Dial(ctx, base+"?model=m", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer sk-fake"}}})
		require.NoError(t, err)
		defer c.CloseNow()
		read := func() map[string]any {
			_, msg, err := c.Read(ctx)
			require.NoError(t, err)
			var ev map[string]any
			require.NoError(t, json.Unmarshal(msg, &ev))
			return ev
		}
		assert.Equal(t, "session.created", read()["type"])
		assert.Equal(t, int64(1), s.RealtimeStats().Open)
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(`{"type":"response.create"}`)))
		assert.Equal(t, "response.create.echo", read()["type"])
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(`not json`)))
		assert.Equal(t, "error", read()["type"])
		require.NoError(t, c.Write(ctx, websocket.MessageBinary, []byte{1, 2, 3}))
		typ, msg, err := c.Read(ctx)
		require.NoError(t, err)
		assert.Equal(t, websocket.MessageBinary, typ)
		assert.Equal(t, []byte{1, 2, 3}, msg)
		require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
		assert.Equal(t, "m", s.RealtimeStats().LastModel)
	})
}

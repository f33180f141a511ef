package fakellm

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/coder/websocket"
)

// RealtimePath is the OpenAI Realtime API's WebSocket endpoint.
const RealtimePath = "/v1/realtime"

// realtimeKeyPrefix marks the subprotocol that carries an API key.
const realtimeKeyPrefix = "openai-insecure-api-key."

// maxRealtimeEvent bounds one client event, as a real server does.
const maxRealtimeEvent = 1 << 20

// RealtimeStats is the fake's account of Realtime sessions.
type RealtimeStats struct {
	Open      int64  // sessions open now
	Sessions  int64  // sessions accepted so far
	LastModel string // the model query parameter of the last session
	// LastProtocols is the Sec-WebSocket-Protocol header of the last
	// upgrade request, as received.
	LastProtocols string
}

// realtimeState is the Server's Realtime accounting.
type realtimeState struct {
	open, sessions atomic.Int64
	last           atomic.Pointer[[2]string] // model, protocols
}

// RealtimeStats returns a snapshot of the Realtime accounting. Safe for
// concurrent use.
func (s *Server) RealtimeStats() RealtimeStats {
	st := RealtimeStats{Open: s.rt.open.Load(), Sessions: s.rt.sessions.Load()}
	if l := s.rt.last.Load(); l != nil {
		st.LastModel, st.LastProtocols = l[0], l[1]
	}
	return st
}

// serveRealtime answers GET /v1/realtime?model=... as the OpenAI Realtime
// API does over WebSocket: it checks the model and, when Options.APIKey is
// set, the credential (Authorization: Bearer, or the key subprotocol),
// refusing with an OpenAI JSON error before the upgrade; it then sends
// session.created and answers every client event with a server event
// echoing it ("<type>.echo", the client event under "event"), text or
// binary alike. A malformed client event gets an "error" event; a close
// from the client closes the session.
func (s *Server) serveRealtime(w http.ResponseWriter, r *http.Request) {
	model := r.URL.Query().Get("model")
	protocols := r.Header.Values("Sec-WebSocket-Protocol")
	if !s.realtimeAuthorized(r.Header.Get("Authorization"), protocols) {
		writeError(w, http.StatusUnauthorized, apiError{Message: "Incorrect API key provided.", Type: typeInvalidRequest, Code: ptr("invalid_api_key")})
		return
	}
	if model == "" {
		writeError(w, http.StatusBadRequest, apiError{Message: "Missing required parameter: 'model'.", Type: typeInvalidRequest, Param: ptr("model"), Code: ptr("missing_required_parameter")})
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: offered(protocols)})
	if err != nil {
		return // Accept answered the client
	}
	s.rt.last.Store(&[2]string{model, strings.Join(protocols, ", ")})
	s.rt.sessions.Add(1)
	s.rt.open.Add(1)
	defer s.rt.open.Add(-1)
	c.SetReadLimit(maxRealtimeEvent)
	s.realtimeSession(r.Context(), c, model)
}

// realtimeSession runs one session until either side closes it.
func (s *Server) realtimeSession(ctx context.Context, c *websocket.Conn, model string) {
	defer c.CloseNow()
	n := 0
	send := func(v map[string]any) error {
		n++
		v["event_id"] = "event_fake_" + strconv.Itoa(n)
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return c.Write(ctx, websocket.MessageText, b)
	}
	if send(map[string]any{"type": "session.created", "session": map[string]any{"object": "realtime.session", "model": model}}) != nil {
		return
	}
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
				c.Close(websocket.StatusNormalClosure, "")
			}
			return
		}
		if typ == websocket.MessageBinary {
			if c.Write(ctx, websocket.MessageBinary, msg) != nil {
				return
			}
			continue
		}
		if send(echoEvent(msg)) != nil {
			return
		}
	}
}

// echoEvent is the server event answering the client event msg.
func echoEvent(msg []byte) map[string]any {
	var ev struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(msg, &ev); err != nil || ev.Type == "" {
		return map[string]any{"type": "error", "error": map[string]any{
			"type": typeInvalidRequest, "code": "invalid_event", "message": "The client event must be a JSON object with a type.",
		}}
	}
	return map[string]any{"type": ev.Type + ".echo", "event": json.RawMessage(msg)}
}

// realtimeAuthorized checks the credential when the server has a key.
func (s *Server) realtimeAuthorized(authorization string, protocols []string) bool {
	if s.opts.APIKey == "" {
		return true
	}
	if authorization == "Bearer "+s.opts.APIKey {
		return true
	}
	for _, p := range protocols {
		for item := range strings.SplitSeq(p, ",") {
			if strings.TrimSpace(item) == realtimeKeyPrefix+s.opts.APIKey {
				return true
			}
		}
	}
	return false
}

// offered lists the subprotocols the server may choose: the first one the
// client offered that is not a credential.
func offered(protocols []string) []string {
	for _, p := range protocols {
		for item := range strings.SplitSeq(p, ",") {
			item = strings.TrimSpace(item)
			if item != "" && !strings.HasPrefix(item, realtimeKeyPrefix) {
				return []string{item}
			}
		}
	}
	return nil
}

package fakellm

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Anthropic Messages mode: POST /v1/messages answers like the Anthropic
// API, with the same event sequence its SDKs parse (message_start,
// content_block_start/delta/stop, ping, message_delta, message_stop).
//
// The text block holds the usual "tok0 tok1 …" tokens. When the request
// offers tools (and tool_choice is not "none") and its last turn is not a
// tool result, the answer ends in a tool_use block calling the first tool
// with FakeToolInput, streamed as input_json_delta pieces, and stop_reason
// "tool_use". The "midstream" failure sends an overloaded_error event after
// half of the tokens; "529" answers 529 overloaded_error.

// FakeToolInput is the input of every tool call the fake server makes.
const FakeToolInput = `{"city": "Paris", "unit": "celsius"}`

// FakeToolID is the id of every tool call the fake server makes.
const FakeToolID = "toolu_fake01"

// messagesRequest is the part of a Messages request the server reads.
type messagesRequest struct {
	Model      string        `json:"model"`
	MaxTokens  *int          `json:"max_tokens"`
	Stream     bool          `json:"stream"`
	Messages   []chatMessage `json:"messages"`
	Tools      []struct{ Name string }
	ToolChoice *struct{ Type string } `json:"tool_choice"`
}

// anthropicMessage is one generated Messages answer.
type anthropicMessage struct {
	id           string
	model        string
	promptTokens int
	tokens       int
	stop         string
	tool         string // name of the tool to call, "" for none
}

func anthropicError(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"type": "error", "error": map[string]string{"type": typ, "message": msg}})
}

// serveMessages answers POST /v1/messages.
func (s *Server) serveMessages(w http.ResponseWriter, r *http.Request) {
	s.countRequest()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.markCancelled()
		return
	}
	var req messagesRequest
	decodeErr := json.Unmarshal(body, &req)
	s.recordBody(req.Model, len(body))
	if decodeErr == nil {
		w.Header().Set(HeaderReceivedModel, req.Model)
	}
	sc, err := parseScenario(r.Header, s.opts)
	switch {
	case err != nil:
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	case sc.fail == "429":
		anthropicError(w, http.StatusTooManyRequests, "rate_limit_error", "Rate limited (injected by "+HeaderFail+").")
		return
	case sc.fail == "500":
		anthropicError(w, http.StatusInternalServerError, "api_error", "Internal error (injected by "+HeaderFail+").")
		return
	case sc.fail == "503", sc.fail == "529":
		anthropicError(w, 529, "overloaded_error", "Overloaded (injected by "+HeaderFail+").")
		return
	case sc.fail == failDisconnect:
		s.injectFailure(w, sc.fail)
		return
	case sc.fail == failHang:
		s.wait(r.Context(), time.Duration(1<<62))
		return
	case decodeErr != nil:
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", "cannot decode request body: "+decodeErr.Error())
		return
	case r.Header.Get("anthropic-version") == "":
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required")
		return
	case req.MaxTokens == nil || *req.MaxTokens < 1:
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", "max_tokens: Field required")
		return
	}
	prompt, err := chatPromptTokens(req.Messages)
	if err != nil {
		prompt = 1 // block content (tool results, images) is not counted
	}
	m := &anthropicMessage{id: newID("msg_"), model: req.Model, promptTokens: prompt, tokens: sc.tokens, stop: "end_turn"}
	if *req.MaxTokens < m.tokens {
		m.tokens, m.stop = *req.MaxTokens, "max_tokens"
	}
	if len(req.Tools) > 0 && (req.ToolChoice == nil || req.ToolChoice.Type != "none") && !lastTurnIsToolResult(req.Messages) && m.stop == "end_turn" {
		m.tool, m.stop = req.Tools[0].Name, "tool_use"
	}
	if !req.Stream {
		delay := sc.ttft + time.Duration(max(m.tokens-1, 0))*sc.itl
		s.respond(w, r, delay, sc.fail, mustEncode(m.response()))
		return
	}
	s.streamMessage(w, r, m, sc)
}

func lastTurnIsToolResult(msgs []chatMessage) bool {
	if len(msgs) == 0 {
		return false
	}
	return strings.Contains(string(msgs[len(msgs)-1].Content), `"tool_result"`)
}

func (m *anthropicMessage) usage(output int) map[string]int {
	return map[string]int{"input_tokens": m.promptTokens, "output_tokens": output,
		"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
}

// response is the non-streaming message.
func (m *anthropicMessage) response() map[string]any {
	var text strings.Builder
	for i := range m.tokens {
		text.WriteString(tokenText(i))
	}
	content := []map[string]any{{"type": "text", "text": text.String()}}
	if m.tool != "" {
		content = append(content, map[string]any{"type": "tool_use", "id": FakeToolID, "name": m.tool, "input": json.RawMessage(FakeToolInput)})
	}
	return map[string]any{"id": m.id, "type": "message", "role": "assistant", "model": m.model, "content": content,
		"stop_reason": m.stop, "stop_sequence": nil, "usage": m.usage(m.tokens)}
}

// streamMessage writes m as Anthropic server-sent events.
func (s *Server) streamMessage(w http.ResponseWriter, r *http.Request, m *anthropicMessage, sc scenario) {
	ctx := r.Context()
	if !s.wait(ctx, sc.ttft) {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(typ string, v any) bool {
		if ctx.Err() != nil {
			s.markCancelled()
			return false
		}
		data := fmt.Appendf(nil, "event: %s\ndata: %s\n\n", typ, mustEncode(v))
		if _, err := w.Write(data); err != nil {
			s.markCancelled()
			return false
		}
		if err := rc.Flush(); err != nil {
			s.markCancelled()
			return false
		}
		return true
	}
	start := map[string]any{"id": m.id, "type": "message", "role": "assistant", "model": m.model, "content": []any{},
		"stop_reason": nil, "stop_sequence": nil, "usage": m.usage(1)}
	if !send("message_start", map[string]any{"type": "message_start", "message": start}) ||
		!send("content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]string{"type": "text", "text": ""}}) ||
		!send("ping", map[string]string{"type": "ping"}) {
		return
	}
	for i := range m.tokens {
		if i > 0 && !s.wait(ctx, sc.itl) {
			return
		}
		if sc.fail == failStall && i == m.tokens/2 {
			s.wait(ctx, time.Duration(1<<62))
			return
		}
		if sc.fail == failMalformed && i == m.tokens/2 {
			if _, err := fmt.Fprintf(w, "event: content_block_delta\ndata: %s\n\n", malformedEvent); err != nil || rc.Flush() != nil {
				return
			}
		}
		if sc.fail == failMidstream && i == m.tokens/2 {
			send("error", map[string]any{"type": "error", "error": map[string]string{"type": "overloaded_error", "message": "Overloaded"}})
			return
		}
		delta := map[string]string{"type": "text_delta", "text": tokenText(i)}
		if !send("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": delta}) {
			return
		}
	}
	if !send("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0}) {
		return
	}
	if m.tool != "" && !s.streamToolUse(send, m.tool) {
		return
	}
	if !send("message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": m.stop, "stop_sequence": nil}, "usage": map[string]int{"output_tokens": m.tokens}}) ||
		!send("message_stop", map[string]string{"type": "message_stop"}) {
		return
	}
	s.markCompleted()
}

// streamToolUse sends content block 1: a tool_use whose input arrives in
// three input_json_delta pieces.
func (s *Server) streamToolUse(send func(string, any) bool, name string) bool {
	block := map[string]any{"type": "tool_use", "id": FakeToolID, "name": name, "input": map[string]any{}}
	if !send("content_block_start", map[string]any{"type": "content_block_start", "index": 1, "content_block": block}) {
		return false
	}
	in := FakeToolInput
	for _, piece := range []string{"", in[:5], in[5:17], in[17:]} {
		delta := map[string]string{"type": "input_json_delta", "partial_json": piece}
		if !send("content_block_delta", map[string]any{"type": "content_block_delta", "index": 1, "delta": delta}) {
			return false
		}
	}
	return send("content_block_stop", map[string]any{"type": "content_block_stop", "index": 1})
}

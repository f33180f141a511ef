package fakebedrock

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// Claude on InvokeModel: the Anthropic Messages body with anthropic_version
// bedrock-2023-05-31 and neither model nor stream (the path carries them);
// the answer is Anthropic's message, or, streamed, one "chunk" frame per
// Anthropic event carrying it base64-encoded in "bytes".

// AnthropicVersion is the anthropic_version InvokeModel takes for Claude.
const AnthropicVersion = "bedrock-2023-05-31"

type invokeRequest struct {
	AnthropicVersion string `json:"anthropic_version"`
	MaxTokens        *int   `json:"max_tokens"`
	Messages         []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Tools []struct {
		Name string `json:"name"`
	} `json:"tools"`
	ToolChoice *struct {
		Type string `json:"type"`
		Name string `json:"name"`
	} `json:"tool_choice"`
}

// validate checks what Bedrock checks of a Claude InvokeModel body; it
// returns the ValidationException message, or "".
func (r invokeRequest) validate(fields map[string]json.RawMessage) string {
	for _, k := range []string{"model", "stream"} {
		if _, ok := fields[k]; ok {
			return "Malformed input request: #: extraneous key [" + k + "] is not permitted, please reformat your input and try again."
		}
	}
	switch {
	case r.AnthropicVersion != AnthropicVersion:
		return "Invalid API version: anthropic_version must be " + AnthropicVersion + "."
	case r.MaxTokens == nil || *r.MaxTokens < 1:
		return "Malformed input request: #: required key [max_tokens] not found, please reformat your input and try again."
	case len(r.Messages) == 0 || r.Messages[0].Role != "user":
		return "messages: the first message must use the user role"
	}
	return ""
}

// planInvoke is plan for a Claude body: the echo of the last user text,
// a call of the first (or the named) tool unless the last turn answers one.
func planInvoke(r invokeRequest) answer {
	var a answer
	bytes, last, lastIsResult := 0, "", false
	for _, m := range r.Messages {
		bytes += len(m.Content)
		if m.Role != "user" {
			continue
		}
		var text string
		if json.Unmarshal(m.Content, &text) == nil {
			last, lastIsResult = text, false
			continue
		}
		var blocks []struct{ Type, Text string }
		_ = json.Unmarshal(m.Content, &blocks)
		for _, b := range blocks {
			switch b.Type {
			case "text":
				last, lastIsResult = b.Text, false
			case "tool_result":
				lastIsResult = true
			}
		}
	}
	a.input = max(1, bytes/4)
	for _, f := range []string{"fake:stream-throttle", "fake:throttle", "fake:invalid"} {
		if strings.Contains(last, f) {
			a.fail = f
			break
		}
	}
	a.text, a.stopped = "Echo: "+last, "end_turn"
	if len(r.Tools) > 0 && !lastIsResult && (r.ToolChoice == nil || r.ToolChoice.Type != "none") {
		a.tool, a.stopped = r.Tools[0].Name, "tool_use"
		if r.ToolChoice != nil && r.ToolChoice.Type == "tool" {
			a.tool = r.ToolChoice.Name
		}
	}
	return a
}

// invoke serves InvokeModel and InvokeModelWithResponseStream for Claude.
func (s *Server) invoke(w http.ResponseWriter, body []byte, stream bool) {
	var fields map[string]json.RawMessage
	var req invokeRequest
	if json.Unmarshal(body, &fields) != nil || json.Unmarshal(body, &req) != nil {
		writeError(w, http.StatusBadRequest, "ValidationException", "Malformed input request, please reformat your input and try again.")
		return
	}
	if msg := req.validate(fields); msg != "" {
		writeError(w, http.StatusBadRequest, "ValidationException", msg)
		return
	}
	a := planInvoke(req)
	switch a.fail {
	case "fake:throttle":
		writeError(w, http.StatusTooManyRequests, "ThrottlingException", "Too many requests, please wait before trying again.")
		return
	case "fake:invalid":
		writeError(w, http.StatusBadRequest, "ValidationException", "The model rejected the request: fake:invalid.")
		return
	}
	w.Header().Set("X-Amzn-Requestid", "fake-request-id")
	if stream {
		s.invokeStream(w, a)
		return
	}
	content := []any{map[string]string{"type": "text", "text": a.text}}
	if a.tool != "" {
		content = append(content, map[string]any{"type": "tool_use", "id": ToolUseID, "name": a.tool, "input": json.RawMessage(ToolInput)})
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": "msg_bdrk_fake01", "type": "message", "role": "assistant", "model": claudeModel, "content": content,
		"stop_reason": a.stopped, "stop_sequence": nil,
		"usage": map[string]int{"input_tokens": a.input, "output_tokens": a.outputTokens()},
	})
}

// claudeModel is the model name Claude's answers on Bedrock carry.
const claudeModel = "claude-3-haiku-20240307"

// invokeStream writes Claude's events as chunk frames, each flushed:
// text in word deltas, the tool call's input in two pieces, message_delta
// with the output tokens, and message_stop with Bedrock's invocation
// metrics.
func (s *Server) invokeStream(w http.ResponseWriter, a answer) {
	w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
	w.WriteHeader(http.StatusOK)
	enc := eventstream.NewEncoder()
	send := func(h eventstream.Headers, payload []byte) bool {
		h.Set(":content-type", eventstream.StringValue("application/json"))
		if err := enc.Encode(w, eventstream.Message{Headers: h, Payload: payload}); err != nil {
			return false
		}
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		return true
	}
	chunk := func(ev map[string]any) bool {
		b, _ := json.Marshal(ev)
		p, _ := json.Marshal(map[string]string{"bytes": base64.StdEncoding.EncodeToString(b)})
		var h eventstream.Headers
		h.Set(":event-type", eventstream.StringValue("chunk"))
		h.Set(":message-type", eventstream.StringValue("event"))
		return send(h, p)
	}
	events := []map[string]any{
		{"type": "message_start", "message": map[string]any{"id": "msg_bdrk_fake01", "type": "message", "role": "assistant", "model": claudeModel,
			"content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": map[string]int{"input_tokens": a.input, "output_tokens": 1}}},
		{"type": "content_block_start", "index": 0, "content_block": map[string]string{"type": "text", "text": ""}},
	}
	for i, piece := range strings.SplitAfter(a.text, " ") {
		events = append(events, map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]string{"type": "text_delta", "text": piece}})
		if i == 0 && a.fail == "fake:stream-throttle" {
			events = append(events, nil) // the exception goes here
		}
	}
	events = append(events, map[string]any{"type": "content_block_stop", "index": 0})
	if a.tool != "" {
		events = append(events, map[string]any{"type": "content_block_start", "index": 1, "content_block": map[string]any{"type": "tool_use", "id": ToolUseID, "name": a.tool, "input": map[string]any{}}})
		for _, piece := range []string{ToolInput[:8], ToolInput[8:]} {
			events = append(events, map[string]any{"type": "content_block_delta", "index": 1, "delta": map[string]string{"type": "input_json_delta", "partial_json": piece}})
		}
		events = append(events, map[string]any{"type": "content_block_stop", "index": 1})
	}
	events = append(events,
		map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": a.stopped, "stop_sequence": nil}, "usage": map[string]int{"output_tokens": a.outputTokens()}},
		map[string]any{"type": "message_stop", "amazon-bedrock-invocationMetrics": map[string]int{
			"inputTokenCount": a.input, "outputTokenCount": a.outputTokens(), "invocationLatency": 1, "firstByteLatency": 1}})
	for _, ev := range events {
		if ev == nil {
			var h eventstream.Headers
			h.Set(":exception-type", eventstream.StringValue("throttlingException"))
			h.Set(":message-type", eventstream.StringValue("exception"))
			send(h, []byte(`{"message":"Too many tokens, please wait before trying again."}`))
			return
		}
		if !chunk(ev) {
			return
		}
	}
}

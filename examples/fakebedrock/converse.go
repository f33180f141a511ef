package fakebedrock

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

type converseRequest struct {
	Messages []struct {
		Role    string            `json:"role"`
		Content []json.RawMessage `json:"content"`
	} `json:"messages"`
	System          []map[string]json.RawMessage `json:"system"`
	InferenceConfig *struct {
		MaxTokens   *int     `json:"maxTokens"`
		Temperature *float64 `json:"temperature"`
		TopP        *float64 `json:"topP"`
	} `json:"inferenceConfig"`
	ToolConfig *struct {
		Tools []struct {
			ToolSpec *struct {
				Name        string          `json:"name"`
				InputSchema json.RawMessage `json:"inputSchema"`
			} `json:"toolSpec"`
		} `json:"tools"`
		ToolChoice map[string]json.RawMessage `json:"toolChoice"`
	} `json:"toolConfig"`
}

// validate checks what Bedrock's Converse checks before calling a model;
// it returns the ValidationException message, or "".
func (r converseRequest) validate() string {
	if len(r.Messages) == 0 {
		return "A conversation must start with a user message. Try again with a conversation that starts with a user message."
	}
	usesTools := false
	for i, m := range r.Messages {
		want := "user"
		if i%2 == 1 {
			want = "assistant"
		}
		if m.Role != want {
			return "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again."
		}
		if len(m.Content) == 0 {
			return fmt.Sprintf("The content field in the Message object at messages.%d is empty. Add a ContentBlock object to the content field and try again.", i)
		}
		for _, c := range m.Content {
			s := string(c)
			usesTools = usesTools || strings.Contains(s, `"toolUse"`) || strings.Contains(s, `"toolResult"`)
		}
	}
	if ic := r.InferenceConfig; ic != nil {
		if ic.MaxTokens != nil && *ic.MaxTokens < 1 {
			return "1 validation error detected: Value at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1"
		}
		if ic.Temperature != nil && (*ic.Temperature < 0 || *ic.Temperature > 1) {
			return "1 validation error detected: Value at 'inferenceConfig.temperature' failed to satisfy constraint: Member must have value less than or equal to 1"
		}
	}
	if usesTools && (r.ToolConfig == nil || len(r.ToolConfig.Tools) == 0) {
		return "The toolConfig field must be defined when using toolUse and toolResult content blocks."
	}
	if r.ToolConfig != nil {
		for i, t := range r.ToolConfig.Tools {
			if t.ToolSpec == nil || t.ToolSpec.Name == "" || len(t.ToolSpec.InputSchema) == 0 {
				return fmt.Sprintf("The toolConfig.tools.%d.toolSpec field needs a name and an inputSchema.", i)
			}
		}
	}
	return ""
}

// answer is what the fake model says to one request.
type answer struct {
	text    string
	tool    string // the tool called, if any
	fail    string // a fake: directive of the last user text
	input   int    // prompt tokens (4 bytes each)
	stopped string
}

func plan(r converseRequest) answer {
	var a answer
	bytes := 0
	for _, s := range r.System {
		bytes += len(s["text"])
	}
	last, lastIsResult := "", false
	for _, m := range r.Messages {
		for _, c := range m.Content {
			bytes += len(c)
			var b struct {
				Text       *string         `json:"text"`
				ToolResult json.RawMessage `json:"toolResult"`
			}
			_ = json.Unmarshal(c, &b)
			if m.Role == "user" {
				lastIsResult = b.ToolResult != nil
				if b.Text != nil {
					last = *b.Text
				}
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
	if tc := r.ToolConfig; tc != nil && len(tc.Tools) > 0 && !lastIsResult {
		a.tool, a.stopped = tc.Tools[0].ToolSpec.Name, "tool_use"
		if named, ok := tc.ToolChoice["tool"]; ok {
			var n struct{ Name string }
			_ = json.Unmarshal(named, &n)
			a.tool = n.Name
		}
	}
	return a
}

func (a answer) outputTokens() int { return len(strings.Fields(a.text)) + len(a.tool) }

func (a answer) usage() map[string]int {
	return map[string]int{"inputTokens": a.input, "outputTokens": a.outputTokens(), "totalTokens": a.input + a.outputTokens()}
}

// whole is the Converse answer.
func (a answer) whole() any {
	content := []any{map[string]string{"text": a.text}}
	if a.tool != "" {
		content = append(content, map[string]any{"toolUse": map[string]any{"toolUseId": ToolUseID, "name": a.tool, "input": json.RawMessage(ToolInput)}})
	}
	return map[string]any{
		"output":     map[string]any{"message": map[string]any{"role": "assistant", "content": content}},
		"stopReason": a.stopped,
		"usage":      a.usage(),
		"metrics":    map[string]int{"latencyMs": 1},
	}
}

// stream writes the ConverseStream answer, one event-stream frame per
// event, each flushed: text in word deltas, then the tool call, then
// messageStop and metadata with the usage.
func (s *Server) stream(w http.ResponseWriter, a answer) {
	w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
	w.WriteHeader(http.StatusOK)
	enc := eventstream.NewEncoder()
	send := func(msg eventstream.Message) bool {
		if err := enc.Encode(w, msg); err != nil {
			return false
		}
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		return true
	}
	event := func(typ string, payload any) bool {
		b, _ := json.Marshal(payload)
		var h eventstream.Headers
		h.Set(":event-type", eventstream.StringValue(typ))
		h.Set(":content-type", eventstream.StringValue("application/json"))
		h.Set(":message-type", eventstream.StringValue("event"))
		return send(eventstream.Message{Headers: h, Payload: b})
	}
	if !event("messageStart", map[string]string{"role": "assistant"}) {
		return
	}
	words := strings.SplitAfter(a.text, " ")
	for i, piece := range words {
		if !event("contentBlockDelta", map[string]any{"contentBlockIndex": 0, "delta": map[string]string{"text": piece}}) {
			return
		}
		if a.fail == "fake:stream-throttle" && i == 0 {
			var h eventstream.Headers
			h.Set(":exception-type", eventstream.StringValue("throttlingException"))
			h.Set(":content-type", eventstream.StringValue("application/json"))
			h.Set(":message-type", eventstream.StringValue("exception"))
			send(eventstream.Message{Headers: h, Payload: []byte(`{"message":"Too many tokens, please wait before trying again."}`)})
			return
		}
	}
	if !event("contentBlockStop", map[string]int{"contentBlockIndex": 0}) {
		return
	}
	if a.tool != "" {
		start := map[string]any{"contentBlockIndex": 1, "start": map[string]any{"toolUse": map[string]string{"toolUseId": ToolUseID, "name": a.tool}}}
		if !event("contentBlockStart", start) {
			return
		}
		for _, piece := range []string{ToolInput[:8], ToolInput[8:]} {
			if !event("contentBlockDelta", map[string]any{"contentBlockIndex": 1, "delta": map[string]any{"toolUse": map[string]string{"input": piece}}}) {
				return
			}
		}
		if !event("contentBlockStop", map[string]int{"contentBlockIndex": 1}) {
			return
		}
	}
	if !event("messageStop", map[string]string{"stopReason": a.stopped}) {
		return
	}
	event("metadata", map[string]any{"usage": a.usage(), "metrics": map[string]int{"latencyMs": 1}})
}

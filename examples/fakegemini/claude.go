package fakegemini

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// Claude on Vertex AI: POST /v1/projects/{project}/locations/{location}/
// publishers/anthropic/models/{model}:rawPredict (a whole message) and
// :streamRawPredict (Anthropic's SSE events), with the same OAuth2 bearer
// as Gemini on Vertex. The body is Anthropic's Messages request with
// anthropic_version "vertex-2023-10-16" and no model (the path names it);
// the fake refuses anything else as Claude on Vertex does, with
// Anthropic's error shape. A request whose last text holds
// "fake:rate-limit" gets Vertex's 429 RESOURCE_EXHAUSTED (Google's
// shape); one with tools and no tool_result yet gets "Let me check." and a
// tool_use of the first tool with {"city":"Paris"}; the others "The
// weather is sunny.".

// ClaudeUsage is what every Claude answer reports in usage.
var ClaudeUsage = struct{ Input, Output int }{Input: 25, Output: 12}

// ClaudeToolUseID is the id of the tool_use Claude answers with.
const ClaudeToolUseID = "toolu_vrtx_01FakeWeather"

// claudeVersion is the anthropic_version Claude on Vertex takes.
const claudeVersion = "vertex-2023-10-16"

// claudePath returns "{model}:{method}" of a Claude on Vertex path and
// whether p is one.
func (s *Server) claudePath(p string) (string, bool) {
	prefix := "/v1/projects/" + s.opts.Project + "/locations/" + s.opts.Location + "/publishers/anthropic/models/"
	rest, ok := strings.CutPrefix(p, prefix)
	return rest, ok && s.opts.Project != ""
}

type claudeRequest struct {
	AnthropicVersion string `json:"anthropic_version"`
	MaxTokens        int    `json:"max_tokens"`
	Stream           bool   `json:"stream"`
	Messages         []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Tools []struct {
		Name string `json:"name"`
	} `json:"tools"`
}

// claude answers a request to Claude on Vertex AI, already authorized.
func (s *Server) claude(w http.ResponseWriter, r *http.Request, rest string) {
	model, method, _ := strings.Cut(rest, ":")
	stream := method == "streamRawPredict"
	if model == "" || (method != "rawPredict" && !stream) {
		googleError(w, http.StatusNotFound, "NOT_FOUND", "Unknown method.")
		return
	}
	var fields map[string]json.RawMessage
	var req claudeRequest
	body := new(bytes.Buffer)
	_, _ = body.ReadFrom(r.Body)
	if json.Unmarshal(body.Bytes(), &fields) != nil || json.Unmarshal(body.Bytes(), &req) != nil {
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", "The request body is not valid JSON.")
		return
	}
	switch _, hasModel := fields["model"]; {
	case req.AnthropicVersion != claudeVersion:
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", "anthropic_version: Input should be 'vertex-2023-10-16'")
		return
	case hasModel:
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", "model: Extra inputs are not permitted")
		return
	case req.MaxTokens < 1:
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", "max_tokens: Field required")
		return
	case len(req.Messages) == 0:
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", "messages: Field required")
		return
	case req.Stream != stream:
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", "stream must be true with streamRawPredict and false with rawPredict.")
		return
	}
	s.mu.Lock()
	s.paths = append(s.paths, r.URL.RequestURI())
	s.mu.Unlock()
	last := req.Messages[len(req.Messages)-1].Content
	if bytes.Contains(last, []byte("fake:rate-limit")) {
		googleError(w, http.StatusTooManyRequests, "RESOURCE_EXHAUSTED", "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model with base model: anthropic-claude.")
		return
	}
	tool := ""
	if len(req.Tools) > 0 && !bytes.Contains(last, []byte(`"tool_result"`)) {
		tool = req.Tools[0].Name
	}
	if stream {
		claudeStream(w, model, tool)
		return
	}
	content, stop := `[{"type":"text","text":"The weather is sunny."}]`, "end_turn"
	if tool != "" {
		name, _ := json.Marshal(tool)
		content, stop = `[{"type":"text","text":"Let me check."},{"type":"tool_use","id":"`+ClaudeToolUseID+`","name":`+string(name)+`,"input":{"city":"Paris"}}]`, "tool_use"
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":"msg_vrtx_01FakeAnswer","type":"message","role":"assistant","model":%q,"content":%s,"stop_reason":%q,"stop_sequence":null,"usage":{"input_tokens":%d,"output_tokens":%d}}`,
		model, content, stop, ClaudeUsage.Input, ClaudeUsage.Output)
}

// claudeStream writes Anthropic's SSE events as Claude on Vertex sends
// them: message_start, ping, the content blocks, message_delta with the
// stop reason and output tokens, message_stop.
func claudeStream(w http.ResponseWriter, model, tool string) {
	events := [][2]string{
		{"message_start", fmt.Sprintf(`{"type":"message_start","message":{"id":"msg_vrtx_01FakeStream","type":"message","role":"assistant","model":%q,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":%d,"output_tokens":1}}}`, model, ClaudeUsage.Input)},
		{"ping", `{"type": "ping"}`},
	}
	stop := "end_turn"
	if tool == "" {
		events = append(events, [][2]string{
			{"content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`},
			{"content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"The weather"}}`},
			{"content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" is sunny."}}`},
			{"content_block_stop", `{"type":"content_block_stop","index":0}`},
		}...)
	} else {
		name, _ := json.Marshal(tool)
		stop = "tool_use"
		events = append(events, [][2]string{
			{"content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`},
			{"content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me check."}}`},
			{"content_block_stop", `{"type":"content_block_stop","index":0}`},
			{"content_block_start", `{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"` + ClaudeToolUseID + `","name":` + string(name) + `,"input":{}}}`},
			{"content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}`},
			{"content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Pa"}}`},
			{"content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ris\"}"}}`},
			{"content_block_stop", `{"type":"content_block_stop","index":1}`},
		}...)
	}
	events = append(events,
		[2]string{"message_delta", fmt.Sprintf(`{"type":"message_delta","delta":{"stop_reason":%q,"stop_sequence":null},"usage":{"output_tokens":%d}}`, stop, ClaudeUsage.Output)},
		[2]string{"message_stop", `{"type":"message_stop"}`})
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	fl, _ := w.(http.Flusher)
	for _, ev := range events {
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev[0], ev[1])
		if fl != nil {
			fl.Flush()
		}
	}
}

// anthropicError writes Anthropic's error shape.
func anthropicError(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{"type": typ, "message": msg}})
	_, _ = w.Write(b)
}

package translate

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/streamgate/streamgate/extproc/sse"
)

// Response translates an Anthropic message or error body into an OpenAI
// chat.completion or error body.
func (t *chatToMessages) Response(status int, body []byte) (int, []byte) {
	if status >= http.StatusBadRequest {
		return anthropicErrorToOpenAI(status, body)
	}
	var in anResponse
	if err := json.Unmarshal(body, &in); err != nil || in.Type != "message" {
		return http.StatusBadGateway, openAIError("The model backend returned a response the gateway cannot translate.", "server_error", "bad_backend_response")
	}
	msg := oaReply{Role: "assistant"}
	var text, thinking strings.Builder
	for _, b := range in.Content {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "thinking":
			thinking.WriteString(b.Thinking)
		case "tool_use":
			args := "{}"
			if len(b.Input) > 0 {
				args = string(compactJSON(b.Input))
			}
			msg.ToolCalls = append(msg.ToolCalls, oaToolCall{ID: b.ID, Type: "function", Function: oaFunctionCall{Name: b.Name, Arguments: args}})
		}
	}
	if text.Len() > 0 || len(msg.ToolCalls) == 0 {
		s := text.String()
		msg.Content = &s
	}
	msg.ReasoningContent = thinking.String()
	stop := ""
	if in.StopReason != nil {
		stop = *in.StopReason
	}
	out := oaChatCompletion{
		ID: in.ID, Object: "chat.completion", Created: t.opts.now().Unix(), Model: in.Model,
		Choices: []oaChoice{{Message: msg, Logprobs: json.RawMessage("null"), FinishReason: finishReason(stop)}},
		Usage:   openAIUsage(in.Usage),
	}
	b, err := json.Marshal(out)
	if err != nil {
		return http.StatusBadGateway, openAIError("The gateway failed to encode the response.", "server_error", "bad_backend_response")
	}
	return status, b
}

// openAIUsage converts Anthropic usage, where input_tokens excludes cached
// tokens, to OpenAI usage, where prompt_tokens includes them: each token is
// counted exactly once.
func openAIUsage(u anUsage) *oaUsage {
	prompt := u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
	out := &oaUsage{PromptTokens: prompt, CompletionTokens: u.OutputTokens, TotalTokens: prompt + u.OutputTokens}
	if u.CacheReadInputTokens > 0 {
		out.PromptTokensDetails = &oaPromptDetails{CachedTokens: u.CacheReadInputTokens}
	}
	return out
}

// finishReason maps an Anthropic stop_reason to an OpenAI finish_reason.
func finishReason(stop string) string {
	switch stop {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	return "stop"
}

// anthropicErrorToOpenAI maps an Anthropic error body to OpenAI's shape,
// keeping the status (529 overloaded becomes 503, which OpenAI clients retry).
func anthropicErrorToOpenAI(status int, body []byte) (int, []byte) {
	var in anErrorBody
	msg, typ := http.StatusText(status), "api_error"
	if json.Unmarshal(body, &in) == nil && in.Error.Message != "" {
		msg, typ = in.Error.Message, in.Error.Type
	}
	if status == 529 {
		status = http.StatusServiceUnavailable
	}
	return status, openAIError(msg, openAITypeFor(typ), typ)
}

func openAITypeFor(anthropicType string) string {
	switch anthropicType {
	case "api_error", "overloaded_error", "":
		return "server_error"
	case "not_found_error", "request_too_large":
		return "invalid_request_error"
	}
	return anthropicType
}

func openAIError(msg, typ, code string) []byte {
	b, _ := json.Marshal(oaErrorBody{Error: oaError{Message: msg, Type: typ, Code: &code}})
	return b
}

// Stream translates Anthropic Messages events into chat.completion.chunk
// events ending in [DONE].
func (t *chatToMessages) Stream(dst, chunk []byte, end bool) []byte {
	return t.st.translate(dst, chunk, end, t)
}

// anthropicToChatStream is the per-stream state of an Anthropic → OpenAI
// event translation.
type anthropicToChatStream struct {
	chatChunks
	dec       sse.Decoder
	blockTool []int // content block index → tool call index, -1 for other blocks
	nextTool  int
	usage     anUsage
	started   bool
	done      bool // [DONE] or an error was sent; later input is ignored
}

func (s *anthropicToChatStream) translate(dst, chunk []byte, end bool, t *chatToMessages) []byte {
	if s.done {
		return dst
	}
	s.dec.Feed(chunk)
	if end {
		s.dec.Close()
	}
	for {
		ev, ok, err := s.dec.Next()
		if err != nil {
			return s.fail(dst, "The model backend sent an event the gateway cannot frame.", "bad_backend_response")
		}
		if !ok {
			break
		}
		dst = s.event(dst, ev.Data, t)
		if s.done {
			return dst
		}
	}
	if end && !s.done {
		dst = s.fail(dst, "The model backend ended the stream before the response was complete.", "incomplete_stream")
	}
	return dst
}

func (s *anthropicToChatStream) event(dst, data []byte, t *chatToMessages) []byte {
	if !gjson.ValidBytes(data) {
		return s.fail(dst, "The model backend sent an event that is not JSON.", "bad_backend_response")
	}
	typ := gjson.GetBytes(data, "type").Str
	if !s.started && typ != "message_start" && typ != "ping" && typ != "error" {
		return s.fail(dst, "The model backend stream did not start with message_start.", "bad_backend_response")
	}
	switch typ {
	case "message_start":
		m := gjson.GetBytes(data, "message")
		s.started = true
		s.setPrefix(rawString(m.Get("id")), rawString(m.Get("model")), t.opts.now().Unix())
		s.readUsage(m.Get("usage"))
		return s.chunk(dst, `{"role":"assistant","content":""}`, "", "")
	case "content_block_start":
		idx := int(gjson.GetBytes(data, "index").Int())
		cb := gjson.GetBytes(data, "content_block")
		for len(s.blockTool) <= idx && idx < 1<<16 {
			s.blockTool = append(s.blockTool, -1)
		}
		switch cb.Get("type").Str {
		case "tool_use":
			k := s.nextTool
			s.nextTool++
			if idx < len(s.blockTool) {
				s.blockTool[idx] = k
			}
			return s.toolStart(dst, k, rawString(cb.Get("id")), rawString(cb.Get("name")), `""`)
		case "text":
			if txt := cb.Get("text"); txt.Str != "" {
				return s.chunk(dst, `{"content":`, txt.Raw, "}")
			}
		}
	case "content_block_delta":
		d := gjson.GetBytes(data, "delta")
		switch d.Get("type").Str {
		case "text_delta":
			return s.chunk(dst, `{"content":`, rawString(d.Get("text")), "}")
		case "thinking_delta":
			return s.chunk(dst, `{"reasoning_content":`, rawString(d.Get("thinking")), "}")
		case "input_json_delta":
			idx := int(gjson.GetBytes(data, "index").Int())
			if idx < 0 || idx >= len(s.blockTool) || s.blockTool[idx] < 0 {
				return s.fail(dst, "The model backend sent tool input for an unknown content block.", "bad_backend_response")
			}
			if piece := d.Get("partial_json"); piece.Str != "" {
				return s.toolArgs(dst, s.blockTool[idx], piece.Raw)
			}
		}
	case "message_delta":
		s.readUsage(gjson.GetBytes(data, "usage"))
		stop := gjson.GetBytes(data, "delta.stop_reason").Str
		return s.chunk(dst, `{}`, "", "", finishReason(stop))
	case "message_stop":
		s.done = true
		return s.end(dst, t.includeUsage, openAIUsage(s.usage))
	case "error":
		e := gjson.GetBytes(data, "error")
		typ := e.Get("type").Str
		msg := e.Get("message").Str
		if msg == "" {
			msg = "The model backend failed while streaming."
		}
		s.done = true
		return appendErrorEvent(dst, msg, openAITypeFor(typ), typ)
	}
	return dst
}

// readUsage takes the usage fields present in u. Anthropic reports
// cumulative counts, so each field is replaced, never added.
func (s *anthropicToChatStream) readUsage(u gjson.Result) {
	if !u.Exists() {
		return
	}
	for _, f := range []struct {
		name string
		dst  *int
	}{
		{"input_tokens", &s.usage.InputTokens}, {"output_tokens", &s.usage.OutputTokens},
		{"cache_creation_input_tokens", &s.usage.CacheCreationInputTokens},
		{"cache_read_input_tokens", &s.usage.CacheReadInputTokens},
	} {
		if v := u.Get(f.name); v.Exists() && v.Type == gjson.Number {
			*f.dst = int(v.Int())
		}
	}
}

func (s *anthropicToChatStream) fail(dst []byte, msg, code string) []byte {
	s.done = true
	return appendErrorEvent(dst, msg, "server_error", code)
}

// appendErrorEvent appends the event OpenAI SDKs raise as an API error
// mid-stream: a data line holding an "error" object.
func appendErrorEvent(dst []byte, msg, typ, code string) []byte {
	dst = append(dst, "data: "...)
	dst = append(dst, openAIError(msg, typ, code)...)
	return append(dst, "\n\n"...)
}

// appendRawString appends r as a JSON string: its raw text when it is one,
// "" otherwise.
func appendRawString(dst []byte, r gjson.Result) []byte {
	if r.Type == gjson.String {
		return append(dst, r.Raw...)
	}
	return append(dst, `""`...)
}

// rawString is r's raw text when r is a JSON string, "" (quoted) otherwise.
func rawString(r gjson.Result) string {
	if r.Type == gjson.String {
		return r.Raw
	}
	return `""`
}

func compactJSON(raw json.RawMessage) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return raw
	}
	return buf.Bytes()
}

package translate

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/streamgate/streamgate/extproc/sse"
)

// Response translates an OpenAI chat.completion or error body into an
// Anthropic message or error body.
func (t *messagesToChat) Response(status int, body []byte) (int, []byte) {
	if status >= http.StatusBadRequest {
		msg := gjson.GetBytes(body, "error.message").Str
		if msg == "" {
			msg = http.StatusText(status)
		}
		return status, AnthropicError(status, msg)
	}
	var in oaChatCompletion
	if err := json.Unmarshal(body, &in); err != nil || len(in.Choices) == 0 {
		return http.StatusBadGateway, AnthropicError(http.StatusBadGateway, "The model backend returned a response the gateway cannot translate.")
	}
	c := in.Choices[0]
	out := anResponse{ID: in.ID, Type: "message", Role: "assistant", Model: in.Model, Content: []anBlock{}}
	if r := c.Message.reasoning(); r != "" {
		out.Content = append(out.Content, anBlock{Type: "thinking", Thinking: r, Signature: new(string)})
	}
	if c.Message.Content != nil && *c.Message.Content != "" {
		out.Content = append(out.Content, anBlock{Type: "text", Text: *c.Message.Content})
	}
	for _, tc := range c.Message.ToolCalls {
		input := json.RawMessage(tc.Function.Arguments)
		if len(input) == 0 {
			input = json.RawMessage("{}")
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(input, &obj) != nil {
			return http.StatusBadGateway, AnthropicError(http.StatusBadGateway, "The model backend returned tool arguments that are not a JSON object.")
		}
		out.Content = append(out.Content, anBlock{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: compactJSON(input)})
	}
	stop := stopReason(c.FinishReason)
	out.StopReason = &stop
	if in.Usage != nil {
		out.Usage = anthropicUsage(*in.Usage)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return http.StatusBadGateway, AnthropicError(http.StatusBadGateway, "The gateway failed to encode the response.")
	}
	return status, b
}

func (r oaReply) reasoning() string {
	if r.ReasoningContent != "" {
		return r.ReasoningContent
	}
	return r.Reasoning
}

// anthropicUsage converts OpenAI usage, whose prompt_tokens include cached
// tokens, to Anthropic usage, whose input_tokens exclude them.
func anthropicUsage(u oaUsage) anUsage {
	cached := 0
	if u.PromptTokensDetails != nil {
		cached = min(u.PromptTokensDetails.CachedTokens, u.PromptTokens)
	}
	return anUsage{InputTokens: u.PromptTokens - cached, OutputTokens: u.CompletionTokens, CacheReadInputTokens: cached}
}

// stopReason maps an OpenAI finish_reason to an Anthropic stop_reason.
func stopReason(finish string) string {
	switch finish {
	case "length":
		return "max_tokens"
	case "tool_calls", "function_call":
		return "tool_use"
	case "content_filter":
		return "refusal"
	}
	return "end_turn"
}

// AnthropicError renders an Anthropic API error body for an HTTP status.
func AnthropicError(status int, msg string) []byte {
	return AnthropicErrorOfType(anthropicErrorType(status), msg)
}

// AnthropicErrorOfType renders an Anthropic API error body whose error.type
// is typ.
func AnthropicErrorOfType(typ, msg string) []byte {
	b, _ := json.Marshal(anErrorBody{Type: "error", Error: anError{Type: typ, Message: msg}})
	return b
}

func anthropicErrorType(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid_request_error"
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case http.StatusServiceUnavailable, 529:
		return "overloaded_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

// Stream translates chat.completion.chunk events into the Anthropic event
// sequence: message_start, content_block_start/delta/stop per block,
// message_delta, message_stop.
func (t *messagesToChat) Stream(dst, chunk []byte, end bool) []byte {
	return t.st.translate(dst, chunk, end)
}

// Open content block kinds of chatToAnthropicStream.
const (
	blockNone = iota
	blockText
	blockThinking
	blockTool
)

// chatToAnthropicStream is the per-stream state of an OpenAI → Anthropic
// event translation.
type chatToAnthropicStream struct {
	chatStreamIn
	next     int // index of the next content block
	open     int // kind of the open block
	openTool int64
	tools    int64 // OpenAI tool call indexes below this one have started
	stop     string
	usage    anUsage
	scratch  []byte
}

func (s *chatToAnthropicStream) translate(dst, chunk []byte, end bool) []byte {
	return s.feed(s, dst, chunk, end)
}

func (s *chatToAnthropicStream) event(dst, data []byte) []byte {
	if e := gjson.GetBytes(data, "error"); e.Exists() {
		msg := e.Get("message").Str
		if msg == "" {
			msg = "The model backend failed while streaming."
		}
		return s.fail(dst, msg)
	}
	root := gjson.ParseBytes(data)
	if !s.started {
		s.started = true
		s.scratch = append(s.scratch[:0], `{"type":"message_start","message":{"id":`...)
		s.scratch = appendRawString(s.scratch, root.Get("id"))
		s.scratch = append(s.scratch, `,"type":"message","role":"assistant","model":`...)
		s.scratch = appendRawString(s.scratch, root.Get("model"))
		s.scratch = append(s.scratch, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}`...)
		dst = sse.AppendEvent(dst, "message_start", s.scratch)
	}
	if u := root.Get("usage"); u.IsObject() {
		s.usage = anthropicUsage(oaUsage{
			PromptTokens: int(u.Get("prompt_tokens").Int()), CompletionTokens: int(u.Get("completion_tokens").Int()),
			PromptTokensDetails: &oaPromptDetails{CachedTokens: int(u.Get("prompt_tokens_details.cached_tokens").Int())},
		})
	}
	choice := root.Get("choices.0")
	if !choice.Exists() {
		return dst
	}
	delta := choice.Get("delta")
	r := delta.Get("reasoning_content")
	if r.Type != gjson.String {
		r = delta.Get("reasoning")
	}
	if r.Type == gjson.String && r.Str != "" {
		dst = s.ensure(dst, blockThinking, `{"type":"thinking","thinking":"","signature":""}`)
		dst = s.delta(dst, `{"type":"thinking_delta","thinking":`, r.Raw)
	}
	if c := delta.Get("content"); c.Type == gjson.String && c.Str != "" {
		dst = s.ensure(dst, blockText, `{"type":"text","text":""}`)
		dst = s.delta(dst, `{"type":"text_delta","text":`, c.Raw)
	}
	for _, tc := range delta.Get("tool_calls").Array() {
		dst = s.toolCall(dst, tc)
		if s.done {
			return dst
		}
	}
	if f := choice.Get("finish_reason"); f.Type == gjson.String {
		dst = s.closeBlock(dst)
		s.finished = true
		s.stop = stopReason(f.Str)
	}
	return dst
}

func (s *chatToAnthropicStream) toolCall(dst []byte, tc gjson.Result) []byte {
	k := tc.Get("index").Int()
	if s.open != blockTool || s.openTool != k {
		if k < s.tools {
			return s.fail(dst, "The model backend interleaved tool calls, which Anthropic streams cannot express.")
		}
		dst = s.closeBlock(dst)
		s.scratch = append(s.scratch[:0], `{"type":"tool_use","id":`...)
		s.scratch = appendRawString(s.scratch, tc.Get("id"))
		s.scratch = append(s.scratch, `,"name":`...)
		s.scratch = appendRawString(s.scratch, tc.Get("function.name"))
		s.scratch = append(s.scratch, `,"input":{}}`...)
		dst = s.start(dst, blockTool, string(s.scratch))
		s.openTool, s.tools = k, k+1
	}
	if a := tc.Get("function.arguments"); a.Type == gjson.String && a.Str != "" {
		dst = s.delta(dst, `{"type":"input_json_delta","partial_json":`, a.Raw)
	}
	return dst
}

// ensure opens a block of kind unless one is open, closing another kind.
func (s *chatToAnthropicStream) ensure(dst []byte, kind int, block string) []byte {
	if s.open == kind {
		return dst
	}
	return s.start(s.closeBlock(dst), kind, block)
}

func (s *chatToAnthropicStream) start(dst []byte, kind int, block string) []byte {
	s.scratch = append(s.scratch[:0], `{"type":"content_block_start","index":`...)
	s.scratch = strconv.AppendInt(s.scratch, int64(s.next), 10)
	s.scratch = append(s.scratch, `,"content_block":`...)
	s.scratch = append(s.scratch, block...)
	s.scratch = append(s.scratch, '}')
	s.open = kind
	return sse.AppendEvent(dst, "content_block_start", s.scratch)
}

func (s *chatToAnthropicStream) delta(dst []byte, open, raw string) []byte {
	s.scratch = append(s.scratch[:0], `{"type":"content_block_delta","index":`...)
	s.scratch = strconv.AppendInt(s.scratch, int64(s.next), 10)
	s.scratch = append(s.scratch, `,"delta":`...)
	s.scratch = append(s.scratch, open...)
	s.scratch = append(s.scratch, raw...)
	s.scratch = append(s.scratch, "}}"...)
	return sse.AppendEvent(dst, "content_block_delta", s.scratch)
}

func (s *chatToAnthropicStream) closeBlock(dst []byte) []byte {
	if s.open == blockNone {
		return dst
	}
	s.scratch = append(s.scratch[:0], `{"type":"content_block_stop","index":`...)
	s.scratch = strconv.AppendInt(s.scratch, int64(s.next), 10)
	s.scratch = append(s.scratch, '}')
	s.open = blockNone
	s.next++
	return sse.AppendEvent(dst, "content_block_stop", s.scratch)
}

func (s *chatToAnthropicStream) complete(dst []byte) []byte {
	dst = s.closeBlock(dst)
	stop := s.stop
	if stop == "" {
		stop = "end_turn"
	}
	s.scratch = append(s.scratch[:0], `{"type":"message_delta","delta":{"stop_reason":`...)
	s.scratch = strconv.AppendQuote(s.scratch, stop)
	s.scratch = append(s.scratch, `,"stop_sequence":null},"usage":`...)
	u, _ := json.Marshal(s.usage)
	s.scratch = append(s.scratch, u...)
	s.scratch = append(s.scratch, '}')
	dst = sse.AppendEvent(dst, "message_delta", s.scratch)
	s.done = true
	return sse.AppendEvent(dst, "message_stop", []byte(`{"type":"message_stop"}`))
}

func (s *chatToAnthropicStream) fail(dst []byte, msg string) []byte {
	s.done = true
	b, _ := json.Marshal(anErrorBody{Type: "error", Error: anError{Type: "api_error", Message: msg}})
	return sse.AppendEvent(dst, "error", b)
}

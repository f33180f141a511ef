package translate

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/streamgate/streamgate/extproc/sse"
)

// olResponse is an Ollama /api/chat answer or stream line.
type olResponse struct {
	Model           string `json:"model"`
	Message         olReply
	Done            bool   `json:"done"`
	DoneReason      string `json:"done_reason"`
	PromptEvalCount int    `json:"prompt_eval_count"`
	EvalCount       int    `json:"eval_count"`
}

type olReply struct {
	Content   string       `json:"content"`
	Thinking  string       `json:"thinking"`
	ToolCalls []olToolCall `json:"tool_calls"`
}

// ollamaID is the id of a translated answer: Ollama sends none.
func (t *chatToOllama) ollamaID() string {
	return "chatcmpl-ollama-" + strconv.FormatInt(t.opts.now().UnixNano(), 36)
}

// toolCallID names the k-th tool call of an answer: Ollama sends no ids.
func toolCallID(k int) string { return "call_" + strconv.Itoa(k) }

// Response translates an Ollama answer or error into OpenAI's shape.
func (t *chatToOllama) Response(status int, body []byte) (int, []byte) {
	if status >= http.StatusBadRequest {
		return ollamaErrorResponse(status, body)
	}
	var in olResponse
	if err := json.Unmarshal(body, &in); err != nil || !in.Done {
		return http.StatusBadGateway, openAIError("The model backend returned a response the gateway cannot translate.", "server_error", "bad_backend_response")
	}
	msg := oaReply{Role: "assistant", ReasoningContent: in.Message.Thinking}
	for k, tc := range in.Message.ToolCalls {
		msg.ToolCalls = append(msg.ToolCalls, oaToolCall{ID: toolCallID(k), Type: "function",
			Function: oaFunctionCall{Name: tc.Function.Name, Arguments: string(compactJSON(tc.Function.Arguments))}})
	}
	if in.Message.Content != "" || len(msg.ToolCalls) == 0 {
		msg.Content = &in.Message.Content
	}
	out := oaChatCompletion{
		ID: t.ollamaID(), Object: "chat.completion", Created: t.opts.now().Unix(), Model: in.Model,
		Choices: []oaChoice{{Message: msg, Logprobs: json.RawMessage("null"), FinishReason: ollamaFinish(in.DoneReason, len(msg.ToolCalls) > 0)}},
		Usage:   &oaUsage{PromptTokens: in.PromptEvalCount, CompletionTokens: in.EvalCount, TotalTokens: in.PromptEvalCount + in.EvalCount},
	}
	b, err := json.Marshal(out)
	if err != nil {
		return http.StatusBadGateway, openAIError("The gateway failed to encode the response.", "server_error", "bad_backend_response")
	}
	return status, b
}

// ollamaErrorResponse translates an Ollama error answer ({"error": msg})
// into an OpenAI error with the same status.
func ollamaErrorResponse(status int, body []byte) (int, []byte) {
	msg := gjson.GetBytes(body, "error").Str
	if msg == "" {
		msg = http.StatusText(status)
	}
	typ := "invalid_request_error"
	if status >= 500 {
		typ = "server_error"
	}
	return status, openAIError(msg, typ, strconv.Itoa(status))
}

func ollamaFinish(doneReason string, toolCalls bool) string {
	switch {
	case toolCalls:
		return "tool_calls"
	case doneReason == "length":
		return "length"
	}
	return "stop"
}

// Stream translates Ollama NDJSON lines into chat.completion.chunk events.
func (t *chatToOllama) Stream(dst, chunk []byte, end bool) []byte {
	s := &t.st
	if s.done {
		return dst
	}
	s.dec.Feed(chunk)
	if end {
		s.dec.Close()
	}
	for !s.done {
		line, ok, err := s.dec.Next()
		if err != nil {
			return s.fail(dst, "The model backend sent a line the gateway cannot frame.", "bad_backend_response")
		}
		if !ok {
			break
		}
		dst = s.line(dst, line, t)
	}
	if end && !s.done {
		dst = s.fail(dst, "The model backend ended the stream before the response was complete.", "incomplete_stream")
	}
	return dst
}

// ollamaToChatStream is the per-stream state of an Ollama → OpenAI
// translation.
type ollamaToChatStream struct {
	chatChunks
	dec     sse.LineDecoder
	started bool
	done    bool
	tools   int
}

func (s *ollamaToChatStream) line(dst, line []byte, t *chatToOllama) []byte {
	if !gjson.ValidBytes(line) {
		return s.fail(dst, "The model backend sent a line that is not JSON.", "bad_backend_response")
	}
	root := gjson.ParseBytes(line)
	if e := root.Get("error"); e.Exists() {
		msg := e.Str
		if msg == "" {
			msg = "The model backend failed while streaming."
		}
		return s.fail(dst, msg, "backend_error")
	}
	if !s.started {
		s.started = true
		id, _ := json.Marshal(t.ollamaID())
		s.setPrefix(string(id), rawString(root.Get("model")), t.opts.now().Unix())
		dst = s.chunk(dst, `{"role":"assistant","content":""}`, "", "")
	}
	msg := root.Get("message")
	if th := msg.Get("thinking"); th.Type == gjson.String && th.Str != "" {
		dst = s.chunk(dst, `{"reasoning_content":`, th.Raw, "}")
	}
	if c := msg.Get("content"); c.Type == gjson.String && c.Str != "" {
		dst = s.chunk(dst, `{"content":`, c.Raw, "}")
	}
	for _, tc := range msg.Get("tool_calls").Array() {
		id, _ := json.Marshal(toolCallID(s.tools))
		args := tc.Get("function.arguments").Raw
		if args == "" {
			args = "{}"
		}
		argStr, _ := json.Marshal(string(compactJSON(json.RawMessage(args))))
		dst = s.toolStart(dst, s.tools, string(id), rawString(tc.Get("function.name")), string(argStr))
		s.tools++
	}
	if !root.Get("done").Bool() {
		return dst
	}
	dst = s.chunk(dst, `{}`, "", "", ollamaFinish(root.Get("done_reason").Str, s.tools > 0))
	prompt, completion := int(root.Get("prompt_eval_count").Int()), int(root.Get("eval_count").Int())
	s.done = true
	return s.end(dst, t.includeUsage, &oaUsage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion})
}

func (s *ollamaToChatStream) fail(dst []byte, msg, code string) []byte {
	s.done = true
	return appendErrorEvent(dst, msg, "server_error", code)
}

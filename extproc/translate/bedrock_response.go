package translate

import (
	"encoding/json"
	"net/http"
	"strings"
)

// bedrockResponse converts a whole Converse answer (or error) into an
// Anthropic message (or error) body, with the client's status; the
// message id begins with idPrefix.
func bedrockResponse(status int, body []byte, opts Options, idPrefix string) (int, []byte) {
	if status >= http.StatusBadRequest {
		return bedrockError(status, body)
	}
	var in bdResponse
	if err := json.Unmarshal(body, &in); err != nil || in.Output.Message == nil {
		return http.StatusBadGateway, AnthropicErrorOfType("api_error", "The model backend returned a response the gateway cannot translate.")
	}
	stop := bedrockStopReason(in.StopReason)
	out := anResponse{
		ID: opts.newID(idPrefix), Type: "message", Role: "assistant", Model: opts.Model,
		Content: make([]anBlock, 0, len(in.Output.Message.Content)), StopReason: &stop, Usage: anthropicUsageOf(in.Usage),
	}
	for _, b := range in.Output.Message.Content {
		switch {
		case b.Text != nil:
			out.Content = append(out.Content, anBlock{Type: "text", Text: *b.Text})
		case b.ToolUse != nil:
			input := b.ToolUse.Input
			if len(input) == 0 || string(input) == "null" {
				input = json.RawMessage("{}")
			}
			out.Content = append(out.Content, anBlock{Type: "tool_use", ID: b.ToolUse.ToolUseID, Name: b.ToolUse.Name, Input: input})
		case b.ReasoningContent != nil && b.ReasoningContent.ReasoningText != nil:
			rt := b.ReasoningContent.ReasoningText
			sig := ""
			if rt.Signature != nil {
				sig = *rt.Signature
			}
			out.Content = append(out.Content, anBlock{Type: "thinking", Thinking: rt.Text, Signature: &sig})
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return http.StatusBadGateway, AnthropicErrorOfType("api_error", "The gateway failed to encode the response.")
	}
	return status, b
}

// anthropicUsageOf maps Bedrock usage to Anthropic's: inputTokens, like
// input_tokens, leaves out the tokens read from or written to the cache.
func anthropicUsageOf(u bdUsage) anUsage {
	return anUsage{InputTokens: u.InputTokens, OutputTokens: u.OutputTokens, CacheReadInputTokens: u.CacheReadInputTokens, CacheCreationInputTokens: u.CacheWriteInputTokens}
}

// bedrockStopReason maps a Converse stopReason to an Anthropic stop_reason.
func bedrockStopReason(stop string) string {
	switch stop {
	case "end_turn", "tool_use", "max_tokens", "stop_sequence", "model_context_window_exceeded":
		return stop
	case "guardrail_intervened", "content_filtered":
		return "refusal"
	}
	return "end_turn"
}

// bedrockError maps a Bedrock error ({"message": ...}, the exception name
// in the x-amzn-errortype header or a __type field) to an Anthropic error.
// A 403 (bad signature, unknown key, missing IAM permission) is the
// gateway's configuration, not the client's: it becomes a 502 saying so.
func bedrockError(status int, body []byte) (int, []byte) {
	var in struct {
		Message  string `json:"message"`
		MessageC string `json:"Message"`
		Type     string `json:"__type"`
	}
	_ = json.Unmarshal(body, &in)
	msg := in.Message
	if msg == "" {
		msg = in.MessageC
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	typ := anthropicErrorType(status)
	if in.Type != "" {
		name := in.Type[strings.LastIndexByte(in.Type, '#')+1:]
		if t := bedrockExceptionType(name); t != "api_error" {
			typ = t
		}
	}
	switch status {
	case http.StatusForbidden, http.StatusUnauthorized:
		return http.StatusBadGateway, AnthropicErrorOfType("api_error", "The model backend (AWS Bedrock) refused the gateway's AWS credentials: "+msg)
	case http.StatusFailedDependency, http.StatusRequestTimeout:
		typ = "api_error"
	}
	return status, AnthropicErrorOfType(typ, msg)
}

package translate

import (
	"encoding/json"
	"fmt"
	"strings"
)

// messagesToChat translates an Anthropic Messages client to an OpenAI Chat
// Completions backend. The response half is in
// anthropic_openai_response.go.
type messagesToChat struct {
	opts   Options
	stream bool
	st     chatToAnthropicStream
}

var _ Translator = (*messagesToChat)(nil)

// messagesFieldsMapped are the Anthropic request fields messagesToChat
// translates; cache_control hints may be dropped (OpenAI-compatible servers
// cache prefixes on their own) and so are accepted wherever they appear.
var messagesFieldsMapped = map[string]bool{
	"model": true, "messages": true, "system": true, "max_tokens": true, "stop_sequences": true, "stream": true,
	"temperature": true, "top_p": true, "top_k": true, "tools": true, "tool_choice": true, "metadata": true, "thinking": true,
}

// Request builds the OpenAI request. Anthropic features an OpenAI backend
// cannot express (server tools, documents, citations, ...) are refused
// with an ErrUnsupported RequestError naming the field.
func (t *messagesToChat) Request(body []byte) (Request, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return Request{}, invalid("The request body must be a JSON object: %s", jsonProblem(err))
	}
	for k, v := range fields {
		if !messagesFieldsMapped[k] && string(v) != "null" {
			return Request{}, unsupported("The field %q is not supported by this model's backend (OpenAI Chat Completions).", k)
		}
	}
	var in anRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return Request{}, invalid("The request body does not match the Messages schema: %s", jsonProblem(err))
	}
	if _, ok := fields["max_tokens"]; !ok || in.MaxTokens < 1 {
		return Request{}, invalid("max_tokens: Field required (a positive integer).")
	}
	t.stream = in.Stream
	out := oaChatRequest{Model: t.opts.Model, Stream: in.Stream, Temperature: in.Temperature, TopP: in.TopP, TopK: in.TopK}
	maxTokens := in.MaxTokens
	out.MaxTokens = &maxTokens
	if in.Stream {
		out.StreamOptions = &oaStreamOptions{IncludeUsage: true}
	}
	if len(in.StopSequences) > 0 {
		out.Stop, _ = json.Marshal(in.StopSequences)
	}
	sys, err := systemMessage(in.System)
	if err != nil {
		return Request{}, err
	}
	out.Messages = sys
	for i, m := range in.Messages {
		msgs, err := chatTurn(m, fmt.Sprintf("messages.%d", i))
		if err != nil {
			return Request{}, err
		}
		out.Messages = append(out.Messages, msgs...)
	}
	if len(in.Messages) == 0 {
		return Request{}, invalid("messages: at least one message is required.")
	}
	for i, tl := range in.Tools {
		if tl.Type != "" && tl.Type != "custom" {
			return Request{}, unsupported("tools.%d: the server tool %q is not supported by this model's backend (OpenAI Chat Completions).", i, tl.Type)
		}
		out.Tools = append(out.Tools, oaTool{Type: "function", Function: oaFunction{Name: tl.Name, Description: tl.Description, Parameters: tl.InputSchema}})
	}
	if in.ToolChoice != nil {
		out.ToolChoice, out.ParallelToolCalls, err = openAIToolChoice(*in.ToolChoice)
		if err != nil {
			return Request{}, err
		}
	}
	if in.Metadata != nil {
		out.User = in.Metadata.UserID
	}
	if in.Thinking != nil && in.Thinking.Type == "enabled" {
		out.ReasoningEffort = effortFor(in.Thinking.BudgetTokens)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return Request{}, fmt.Errorf("cannot encode OpenAI request: %w", err)
	}
	return Request{Body: b, Path: "/v1/chat/completions", Stream: in.Stream}, nil
}

// effortFor buckets an Anthropic thinking budget into reasoning_effort.
func effortFor(budget int) string {
	switch {
	case budget < 4096:
		return "low"
	case budget < 16384:
		return "medium"
	}
	return "high"
}

func systemMessage(raw json.RawMessage) ([]oaMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []oaMessage{{Role: "system", Content: raw}}, nil
	}
	var blocks []anBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, invalid("system must be a string or an array of text blocks.")
	}
	texts := make([]string, 0, len(blocks))
	for i, b := range blocks {
		if b.Type != "text" {
			return nil, unsupported("system.%d: blocks of type %q are not supported.", i, b.Type)
		}
		texts = append(texts, b.Text)
	}
	c, _ := json.Marshal(strings.Join(texts, "\n\n"))
	return []oaMessage{{Role: "system", Content: c}}, nil
}

// chatTurn converts one Anthropic turn into OpenAI messages: tool_result
// blocks become tool messages (first, as OpenAI wants them right after the
// assistant's tool calls), the rest one user or assistant message.
func chatTurn(m anMessage, where string) ([]oaMessage, error) {
	if m.Role != "user" && m.Role != "assistant" {
		return nil, invalid("%s.role must be user or assistant.", where)
	}
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return []oaMessage{{Role: m.Role, Content: m.Content}}, nil
	}
	var blocks []anBlock
	if err := json.Unmarshal(m.Content, &blocks); err != nil {
		return nil, invalid("%s.content must be a string or an array of content blocks.", where)
	}
	var tools []oaMessage
	var parts []oaPart
	var calls []oaToolCall
	for k, b := range blocks {
		at := fmt.Sprintf("%s.content.%d", where, k)
		switch {
		case b.Type == "text":
			parts = append(parts, oaPart{Type: "text", Text: b.Text})
		case b.Type == "image" && m.Role == "user":
			url, err := imageURL(b.Source, at)
			if err != nil {
				return nil, err
			}
			parts = append(parts, oaPart{Type: "image_url", ImageURL: &oaImageURL{URL: url}})
		case b.Type == "tool_result" && m.Role == "user":
			msg, err := toolMessage(b, at)
			if err != nil {
				return nil, err
			}
			tools = append(tools, msg)
		case b.Type == "tool_use" && m.Role == "assistant":
			args := "{}"
			if len(b.Input) > 0 {
				args = string(compactJSON(b.Input))
			}
			calls = append(calls, oaToolCall{ID: b.ID, Type: "function", Function: oaFunctionCall{Name: b.Name, Arguments: args}})
		case (b.Type == "thinking" || b.Type == "redacted_thinking") && m.Role == "assistant":
			// Earlier turns' reasoning: OpenAI backends take no reasoning
			// input, and Anthropic itself ignores it outside the last turn.
		default:
			return nil, unsupported("%s: %s blocks of type %q are not supported by this model's backend (OpenAI Chat Completions).", at, m.Role, b.Type)
		}
	}
	out := tools
	if m.Role == "assistant" {
		if len(parts) > 0 || len(calls) > 0 {
			msg := oaMessage{Role: "assistant", ToolCalls: calls}
			if len(parts) > 0 {
				msg.Content, _ = json.Marshal(joinText(parts))
			}
			out = append(out, msg)
		}
		return out, nil
	}
	if len(parts) > 0 {
		c, _ := json.Marshal(parts)
		if len(parts) == 1 && parts[0].Type == "text" {
			c, _ = json.Marshal(parts[0].Text)
		}
		out = append(out, oaMessage{Role: "user", Content: c})
	}
	return out, nil
}

func joinText(parts []oaPart) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String()
}

func imageURL(src *anSource, where string) (string, error) {
	switch {
	case src == nil:
		return "", invalid("%s.source is required.", where)
	case src.Type == "base64":
		return "data:" + src.MediaType + ";base64," + src.Data, nil
	case src.Type == "url":
		return src.URL, nil
	}
	return "", unsupported("%s.source of type %q is not supported by this model's backend (OpenAI Chat Completions).", where, src.Type)
}

// toolMessage converts a tool_result block. An is_error result keeps its
// text; OpenAI has no error flag, so the text is prefixed to say so.
func toolMessage(b anBlock, where string) (oaMessage, error) {
	text := ""
	if len(b.Content) > 0 && string(b.Content) != "null" {
		var s string
		if json.Unmarshal(b.Content, &s) == nil {
			text = s
		} else {
			var blocks []anBlock
			if err := json.Unmarshal(b.Content, &blocks); err != nil {
				return oaMessage{}, invalid("%s.content must be a string or an array of text blocks.", where)
			}
			var parts []string
			for k, c := range blocks {
				if c.Type != "text" {
					return oaMessage{}, unsupported("%s.content.%d: tool results of type %q are not supported by this model's backend (OpenAI Chat Completions).", where, k, c.Type)
				}
				parts = append(parts, c.Text)
			}
			text = strings.Join(parts, "\n")
		}
	}
	if b.IsError {
		text = "Error: " + text
	}
	c, _ := json.Marshal(text)
	return oaMessage{Role: "tool", ToolCallID: b.ToolUseID, Content: c}, nil
}

func openAIToolChoice(tc anToolChoice) (json.RawMessage, *bool, error) {
	var choice json.RawMessage
	switch tc.Type {
	case "auto":
		choice = json.RawMessage(`"auto"`)
	case "any":
		choice = json.RawMessage(`"required"`)
	case "none":
		choice = json.RawMessage(`"none"`)
	case "tool":
		b, _ := json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}})
		choice = b
	default:
		return nil, nil, invalid("tool_choice.type %q is not one of auto, any, tool, none.", tc.Type)
	}
	var parallel *bool
	if tc.DisableParallelToolUse {
		f := false
		parallel = &f
	}
	return choice, parallel, nil
}

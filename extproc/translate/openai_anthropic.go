package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// chatToMessages translates an OpenAI Chat Completions client to an
// Anthropic Messages backend. The response half is in
// openai_anthropic_response.go.
type chatToMessages struct {
	opts         Options
	stream       bool
	includeUsage bool
	st           anthropicToChatStream
	// maxTemperature, when set, replaces Anthropic's temperature range
	// 0..1 for a backend reached through this translation (Gemini: 0..2).
	maxTemperature float64
}

var _ Translator = (*chatToMessages)(nil)

// anthropicVersion is the Messages API version Streamgate speaks to
// Anthropic backends.
const anthropicVersion = "2023-06-01"

// chatFieldsDropped are OpenAI request fields whose meaning survives being
// dropped: they only ask the server to keep or label the request.
var chatFieldsDropped = map[string]bool{"store": true, "metadata": true, "service_tier": true}

// chatFieldsMapped are the fields chatToMessages translates.
var chatFieldsMapped = map[string]bool{
	"model": true, "messages": true, "max_tokens": true, "max_completion_tokens": true, "temperature": true,
	"top_p": true, "stop": true, "stream": true, "stream_options": true, "tools": true, "tool_choice": true,
	"parallel_tool_calls": true, "user": true, "reasoning_effort": true,
}

// thinkingBudget maps OpenAI reasoning_effort to an Anthropic thinking
// budget in tokens.
var thinkingBudget = map[string]int{"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}

// Request builds the Anthropic request. Everything OpenAI can say that
// Anthropic cannot (n > 1, logprobs, penalties, JSON mode, audio, ...) is
// refused with an ErrUnsupported RequestError naming the field.
func (t *chatToMessages) Request(body []byte) (Request, error) {
	if err := checkChatFields(body); err != nil {
		return Request{}, err
	}
	var in oaChatRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return Request{}, invalid("The request body does not match the Chat Completions schema: %s", jsonProblem(err))
	}
	out := anRequest{Model: t.opts.Model, Stream: in.Stream, Temperature: in.Temperature, TopP: in.TopP}
	t.stream = in.Stream
	t.includeUsage = in.StreamOptions != nil && in.StreamOptions.IncludeUsage
	if in.Temperature != nil && t.maxTemperature > 0 && (*in.Temperature < 0 || *in.Temperature > t.maxTemperature) {
		return Request{}, invalid("temperature %g is outside 0..%g.", *in.Temperature, t.maxTemperature)
	}
	if in.Temperature != nil && t.maxTemperature == 0 && (*in.Temperature < 0 || *in.Temperature > 1) {
		return Request{}, unsupported("temperature %g is outside 0..1, the range Anthropic models accept.", *in.Temperature)
	}
	out.MaxTokens = t.opts.DefaultMaxTokens
	for _, m := range []*int{in.MaxTokens, in.MaxCompletionTokens} {
		if m != nil {
			if *m < 1 {
				return Request{}, invalid("max_tokens must be at least 1.")
			}
			out.MaxTokens = *m
		}
	}
	if out.MaxTokens < 1 {
		return Request{}, invalid("max_tokens is required for this model.")
	}
	stops, err := stopSequences(in.Stop)
	if err != nil {
		return Request{}, err
	}
	out.StopSequences = stops
	if out.System, out.Messages, err = chatMessages(in.Messages); err != nil {
		return Request{}, err
	}
	if out.Tools, err = chatTools(in.Tools); err != nil {
		return Request{}, err
	}
	if out.ToolChoice, err = chatToolChoice(in.ToolChoice, in.ParallelToolCalls); err != nil {
		return Request{}, err
	}
	if in.User != "" {
		out.Metadata = &anMetadata{UserID: in.User}
	}
	if in.ReasoningEffort != "" && in.ReasoningEffort != "none" {
		budget, ok := thinkingBudget[in.ReasoningEffort]
		if !ok {
			return Request{}, invalid("reasoning_effort %q is not one of minimal, low, medium, high.", in.ReasoningEffort)
		}
		if budget >= out.MaxTokens {
			return Request{}, unsupported("reasoning_effort %q needs a thinking budget of %d tokens, which must be below max_tokens (%d); raise max_tokens.", in.ReasoningEffort, budget, out.MaxTokens)
		}
		out.Thinking = &anThinking{Type: "enabled", BudgetTokens: budget}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return Request{}, fmt.Errorf("cannot encode Anthropic request: %w", err)
	}
	return Request{Body: b, Path: "/v1/messages", Headers: [][2]string{{"anthropic-version", anthropicVersion}}, Stream: in.Stream}, nil
}

// checkChatFields refuses top-level fields Anthropic cannot honour. A null
// value counts as absent; neutral values (n: 1, penalties 0, ...) pass.
func checkChatFields(body []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return invalid("The request body must be a JSON object: %s", jsonProblem(err))
	}
	for k, v := range fields {
		if chatFieldsMapped[k] || chatFieldsDropped[k] || string(v) == "null" {
			continue
		}
		neutral := false
		switch k {
		case "n":
			neutral = string(v) == "1"
		case "logprobs":
			neutral = string(v) == "false"
		case "presence_penalty", "frequency_penalty":
			var f float64
			neutral = json.Unmarshal(v, &f) == nil && f == 0
		case "response_format":
			var rf struct{ Type string }
			neutral = json.Unmarshal(v, &rf) == nil && rf.Type == "text"
		case "modalities":
			neutral = string(bytes.ReplaceAll(v, []byte(" "), nil)) == `["text"]`
		}
		if !neutral {
			return unsupported("The field %q is not supported by this model's backend (Anthropic Messages).", k)
		}
	}
	return nil
}

func stopSequences(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, invalid("stop must be a string or an array of strings.")
	}
	return many, nil
}

// chatMessages splits OpenAI messages into Anthropic's system prompt and
// alternating turns. Tool results become tool_result blocks of a user turn;
// consecutive turns of one role merge.
func chatMessages(msgs []oaMessage) (json.RawMessage, []anMessage, error) {
	var system []anBlock
	var turns []anMessage
	var blocks []anBlock
	role := ""
	flush := func() error {
		if len(blocks) == 0 {
			return nil
		}
		c, err := json.Marshal(blocks)
		if err != nil {
			return fmt.Errorf("cannot encode message content: %w", err)
		}
		turns = append(turns, anMessage{Role: role, Content: c})
		blocks = nil
		return nil
	}
	for i, m := range msgs {
		if m.Name != "" {
			return nil, nil, unsupported("messages[%d].name is not supported by this model's backend (Anthropic Messages).", i)
		}
		var next string
		var add []anBlock
		var err error
		switch m.Role {
		case "system", "developer":
			parts, err := textParts(m.Content, fmt.Sprintf("messages[%d]", i))
			if err != nil {
				return nil, nil, err
			}
			system = append(system, parts...)
			continue
		case "user":
			next = "user"
			add, err = userBlocks(m.Content, fmt.Sprintf("messages[%d]", i))
		case "assistant":
			next = "assistant"
			add, err = assistantBlocks(m, fmt.Sprintf("messages[%d]", i))
		case "tool":
			next = "user"
			add, err = toolResultBlock(m, fmt.Sprintf("messages[%d]", i))
		default:
			return nil, nil, unsupported("messages[%d].role %q is not supported by this model's backend (Anthropic Messages).", i, m.Role)
		}
		if err != nil {
			return nil, nil, err
		}
		if next != role {
			if err := flush(); err != nil {
				return nil, nil, err
			}
			role = next
		}
		blocks = append(blocks, add...)
	}
	if err := flush(); err != nil {
		return nil, nil, err
	}
	if len(turns) == 0 {
		return nil, nil, invalid("messages must hold at least one user or assistant message.")
	}
	var sys json.RawMessage
	switch {
	case len(system) == 1:
		sys, _ = json.Marshal(system[0].Text)
	case len(system) > 1:
		sys, _ = json.Marshal(system)
	}
	return sys, turns, nil
}

// textParts reads content that may only hold text: a string or text parts.
func textParts(raw json.RawMessage, where string) ([]anBlock, error) {
	parts, err := contentParts(raw, where)
	if err != nil {
		return nil, err
	}
	for _, p := range parts {
		if p.Type != "text" {
			return nil, unsupported("%s.content may only hold text for this model's backend (Anthropic Messages), not %q.", where, p.Type)
		}
	}
	return parts, nil
}

// contentParts converts string or array content to Anthropic blocks.
func contentParts(raw json.RawMessage, where string) ([]anBlock, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return nil, nil
		}
		return []anBlock{{Type: "text", Text: s}}, nil
	}
	var parts []oaPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, invalid("%s.content must be a string or an array of content parts.", where)
	}
	out := make([]anBlock, 0, len(parts))
	for k, p := range parts {
		switch p.Type {
		case "text":
			out = append(out, anBlock{Type: "text", Text: p.Text})
		case "image_url":
			if p.ImageURL == nil {
				return nil, invalid("%s.content[%d].image_url is missing.", where, k)
			}
			src, err := imageSource(p.ImageURL.URL, fmt.Sprintf("%s.content[%d]", where, k))
			if err != nil {
				return nil, err
			}
			out = append(out, anBlock{Type: "image", Source: src})
		default:
			return nil, unsupported("%s.content[%d] of type %q is not supported by this model's backend (Anthropic Messages).", where, k, p.Type)
		}
	}
	return out, nil
}

// imageSource turns an image URL (https or a base64 data URL) into an
// Anthropic image source.
func imageSource(url, where string) (*anSource, error) {
	if rest, ok := strings.CutPrefix(url, "data:"); ok {
		meta, data, found := strings.Cut(rest, ",")
		mediaType, isBase64 := strings.CutSuffix(meta, ";base64")
		if !found || !isBase64 || mediaType == "" {
			return nil, invalid("%s.image_url.url must be a base64 data URL (data:image/png;base64,...) or an http(s) URL.", where)
		}
		return &anSource{Type: "base64", MediaType: mediaType, Data: data}, nil
	}
	if strings.HasPrefix(url, "https://") || strings.HasPrefix(url, "http://") {
		return &anSource{Type: "url", URL: url}, nil
	}
	return nil, invalid("%s.image_url.url must be a base64 data URL or an http(s) URL.", where)
}

func userBlocks(raw json.RawMessage, where string) ([]anBlock, error) {
	blocks, err := contentParts(raw, where)
	if err != nil {
		return nil, err
	}
	if len(blocks) == 0 {
		return nil, invalid("%s.content must not be empty.", where)
	}
	return blocks, nil
}

func assistantBlocks(m oaMessage, where string) ([]anBlock, error) {
	blocks, err := textParts(m.Content, where)
	if err != nil {
		return nil, err
	}
	for k, tc := range m.ToolCalls {
		if tc.Type != "function" && tc.Type != "" {
			return nil, unsupported("%s.tool_calls[%d] of type %q is not supported by this model's backend (Anthropic Messages).", where, k, tc.Type)
		}
		input := json.RawMessage(strings.TrimSpace(tc.Function.Arguments))
		if len(input) == 0 {
			input = json.RawMessage("{}")
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(input, &obj) != nil {
			return nil, invalid("%s.tool_calls[%d].function.arguments must be a JSON object.", where, k)
		}
		blocks = append(blocks, anBlock{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: input})
	}
	if len(blocks) == 0 {
		return nil, invalid("%s must have content or tool_calls.", where)
	}
	return blocks, nil
}

func toolResultBlock(m oaMessage, where string) ([]anBlock, error) {
	if m.ToolCallID == "" {
		return nil, invalid("%s.tool_call_id is required for tool messages.", where)
	}
	parts, err := textParts(m.Content, where)
	if err != nil {
		return nil, err
	}
	b := anBlock{Type: "tool_result", ToolUseID: m.ToolCallID}
	if len(parts) > 0 {
		b.Content, _ = json.Marshal(parts)
	}
	return []anBlock{b}, nil
}

func chatTools(tools []oaTool) ([]anTool, error) {
	out := make([]anTool, 0, len(tools))
	for i, t := range tools {
		if t.Type != "function" {
			return nil, unsupported("tools[%d] of type %q is not supported by this model's backend (Anthropic Messages).", i, t.Type)
		}
		if t.Function.Name == "" {
			return nil, invalid("tools[%d].function.name is required.", i)
		}
		schema := t.Function.Parameters
		if len(schema) == 0 || string(schema) == "null" {
			schema = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out = append(out, anTool{Name: t.Function.Name, Description: t.Function.Description, InputSchema: schema})
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func chatToolChoice(raw json.RawMessage, parallel *bool) (*anToolChoice, error) {
	var tc *anToolChoice
	if len(raw) > 0 && string(raw) != "null" {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			switch s {
			case "auto":
				tc = &anToolChoice{Type: "auto"}
			case "none":
				tc = &anToolChoice{Type: "none"}
			case "required":
				tc = &anToolChoice{Type: "any"}
			default:
				return nil, invalid("tool_choice %q is not one of auto, none, required.", s)
			}
		} else {
			var named struct {
				Type     string
				Function struct{ Name string }
			}
			if err := json.Unmarshal(raw, &named); err != nil || named.Type != "function" || named.Function.Name == "" {
				return nil, unsupported("tool_choice must be auto, none, required or a named function for this model's backend (Anthropic Messages).")
			}
			tc = &anToolChoice{Type: "tool", Name: named.Function.Name}
		}
	}
	if parallel != nil && !*parallel {
		if tc == nil {
			tc = &anToolChoice{Type: "auto"}
		}
		if tc.Type != "none" {
			tc.DisableParallelToolUse = true
		}
	}
	return tc, nil
}

// jsonProblem describes a JSON decoding error without quoting the input.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q has the wrong type (%s)", te.Field, te.Value)
	}
	return "malformed JSON"
}

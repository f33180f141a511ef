package translate

import (
	"encoding/json"
	"fmt"
	"strings"
)

// chatToOllama translates an OpenAI Chat Completions client to an Ollama
// backend (POST /api/chat, NDJSON streaming). The response half is in
// openai_ollama_response.go.
type chatToOllama struct {
	opts         Options
	stream       bool
	includeUsage bool
	st           ollamaToChatStream
}

var _ Translator = (*chatToOllama)(nil)

type olRequest struct {
	Model    string          `json:"model"`
	Messages []olMessage     `json:"messages"`
	Stream   bool            `json:"stream"`
	Tools    []oaTool        `json:"tools,omitempty"`
	Format   json.RawMessage `json:"format,omitempty"`
	Options  *olOptions      `json:"options,omitempty"`
	Think    *bool           `json:"think,omitempty"`
}

type olMessage struct {
	Role      string       `json:"role"`
	Content   string       `json:"content"`
	Images    []string     `json:"images,omitempty"`
	ToolCalls []olToolCall `json:"tool_calls,omitempty"`
	ToolName  string       `json:"tool_name,omitempty"`
}

type olToolCall struct {
	Function olFunctionCall `json:"function"`
}

type olFunctionCall struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
}

type olOptions struct {
	NumPredict       *int     `json:"num_predict,omitempty"`
	Temperature      *float64 `json:"temperature,omitempty"`
	TopP             *float64 `json:"top_p,omitempty"`
	Stop             []string `json:"stop,omitempty"`
	Seed             *int     `json:"seed,omitempty"`
	PresencePenalty  *float64 `json:"presence_penalty,omitempty"`
	FrequencyPenalty *float64 `json:"frequency_penalty,omitempty"`
}

func (o *olOptions) empty() bool {
	return o.NumPredict == nil && o.Temperature == nil && o.TopP == nil && len(o.Stop) == 0 && o.Seed == nil &&
		o.PresencePenalty == nil && o.FrequencyPenalty == nil
}

// ollamaChatFields are the OpenAI fields chatToOllama translates or may drop.
var ollamaChatFields = map[string]bool{
	"model": true, "messages": true, "max_tokens": true, "max_completion_tokens": true, "temperature": true,
	"top_p": true, "stop": true, "stream": true, "stream_options": true, "tools": true, "tool_choice": true,
	"seed": true, "presence_penalty": true, "frequency_penalty": true, "response_format": true,
	"reasoning_effort": true, "user": true, "store": true, "metadata": true, "service_tier": true,
	"parallel_tool_calls": true,
}

// Request builds the Ollama /api/chat request.
func (t *chatToOllama) Request(body []byte) (Request, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return Request{}, invalid("The request body must be a JSON object: %s", jsonProblem(err))
	}
	for k, v := range fields {
		neutral := string(v) == "null" || (k == "n" && string(v) == "1") || (k == "logprobs" && string(v) == "false")
		if !ollamaChatFields[k] && !neutral {
			return Request{}, unsupported("The field %q is not supported by this model's backend (Ollama).", k)
		}
	}
	var in struct {
		oaChatRequest
		Seed             *int            `json:"seed"`
		PresencePenalty  *float64        `json:"presence_penalty"`
		FrequencyPenalty *float64        `json:"frequency_penalty"`
		ResponseFormat   json.RawMessage `json:"response_format"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return Request{}, invalid("The request body does not match the Chat Completions schema: %s", jsonProblem(err))
	}
	t.stream = in.Stream
	t.includeUsage = in.StreamOptions != nil && in.StreamOptions.IncludeUsage
	opts := olOptions{Temperature: in.Temperature, TopP: in.TopP, Seed: in.Seed, PresencePenalty: in.PresencePenalty, FrequencyPenalty: in.FrequencyPenalty}
	for _, m := range []*int{in.MaxTokens, in.MaxCompletionTokens} {
		if m != nil {
			opts.NumPredict = m
		}
	}
	var err error
	if opts.Stop, err = stopSequences(in.Stop); err != nil {
		return Request{}, err
	}
	out := olRequest{Model: t.opts.Model, Stream: in.Stream}
	if !opts.empty() {
		out.Options = &opts
	}
	if out.Messages, err = ollamaMessages(in.Messages); err != nil {
		return Request{}, err
	}
	if out.Format, err = ollamaFormat(in.ResponseFormat); err != nil {
		return Request{}, err
	}
	out.Tools = in.Tools
	for i, tl := range in.Tools {
		if tl.Type != "function" {
			return Request{}, unsupported("tools[%d] of type %q is not supported by this model's backend (Ollama).", i, tl.Type)
		}
	}
	if len(in.ToolChoice) > 0 && string(in.ToolChoice) != "null" {
		switch strings.Trim(string(in.ToolChoice), `" `) {
		case "auto":
		case "none":
			out.Tools = nil
		default:
			return Request{}, unsupported("tool_choice %s is not supported by this model's backend (Ollama): use auto or none.", in.ToolChoice)
		}
	}
	if in.ReasoningEffort != "" {
		think := in.ReasoningEffort != "none"
		out.Think = &think
	}
	b, err := json.Marshal(out)
	if err != nil {
		return Request{}, fmt.Errorf("cannot encode Ollama request: %w", err)
	}
	return Request{Body: b, Path: "/api/chat", Stream: in.Stream}, nil
}

func ollamaFormat(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var rf struct {
		Type       string
		JSONSchema struct {
			Schema json.RawMessage `json:"schema"`
		} `json:"json_schema"`
	}
	if err := json.Unmarshal(raw, &rf); err != nil {
		return nil, invalid("response_format must be an object.")
	}
	switch rf.Type {
	case "text":
		return nil, nil
	case "json_object":
		return json.RawMessage(`"json"`), nil
	case "json_schema":
		if len(rf.JSONSchema.Schema) == 0 {
			return nil, invalid("response_format.json_schema.schema is required.")
		}
		return rf.JSONSchema.Schema, nil
	}
	return nil, unsupported("response_format %q is not supported by this model's backend (Ollama).", rf.Type)
}

// ollamaMessages converts OpenAI messages. Images must be base64 data URLs:
// Ollama does not fetch URLs. Tool results carry the called function's
// name, looked up from the assistant's earlier tool calls.
func ollamaMessages(msgs []oaMessage) ([]olMessage, error) {
	out := make([]olMessage, 0, len(msgs))
	names := map[string]string{} // tool call id → function name
	for i, m := range msgs {
		where := fmt.Sprintf("messages[%d]", i)
		if m.Name != "" {
			return nil, unsupported("%s.name is not supported by this model's backend (Ollama).", where)
		}
		role := m.Role
		switch role {
		case "developer":
			role = "system"
		case "system", "user", "assistant", "tool":
		default:
			return nil, unsupported("%s.role %q is not supported by this model's backend (Ollama).", where, m.Role)
		}
		blocks, err := contentParts(m.Content, where)
		if err != nil {
			return nil, err
		}
		msg := olMessage{Role: role}
		var text strings.Builder
		for k, b := range blocks {
			switch {
			case b.Type == "text":
				text.WriteString(b.Text)
			case b.Type == "image" && b.Source.Type == "base64" && role == "user":
				msg.Images = append(msg.Images, b.Source.Data)
			default:
				return nil, unsupported("%s.content[%d]: only text and base64 data URL images (in user messages) are supported by this model's backend (Ollama).", where, k)
			}
		}
		msg.Content = text.String()
		for k, tc := range m.ToolCalls {
			args := json.RawMessage(strings.TrimSpace(tc.Function.Arguments))
			if len(args) == 0 {
				args = json.RawMessage("{}")
			}
			var obj map[string]json.RawMessage
			if json.Unmarshal(args, &obj) != nil {
				return nil, invalid("%s.tool_calls[%d].function.arguments must be a JSON object.", where, k)
			}
			names[tc.ID] = tc.Function.Name
			msg.ToolCalls = append(msg.ToolCalls, olToolCall{Function: olFunctionCall{Name: tc.Function.Name, Arguments: args}})
		}
		if role == "tool" {
			msg.ToolName = names[m.ToolCallID]
		}
		out = append(out, msg)
	}
	return out, nil
}

package translate

import (
	"encoding/json"
	"fmt"
	"strings"
)

// responsesToChat translates an OpenAI Responses API client to an OpenAI
// Chat Completions backend, statelessly: every request carries its whole
// conversation in input, so anything that needs server-side state
// (previous_response_id, store: true, background, item references) is
// refused naming the field. The response half is in
// responses_openai_response.go.
type responsesToChat struct {
	opts   Options
	stream bool
	echo   rsEcho
	st     chatToResponsesStream
}

var _ Translator = (*responsesToChat)(nil)

// responsesFieldsMapped are the Responses request fields responsesToChat
// translates or may safely drop (metadata and truncation "disabled" change
// nothing a stateless backend does).
var responsesFieldsMapped = map[string]bool{
	"model": true, "input": true, "instructions": true, "max_output_tokens": true, "temperature": true, "top_p": true,
	"stream": true, "tools": true, "tool_choice": true, "parallel_tool_calls": true, "user": true, "metadata": true,
	"reasoning": true, "text": true, "store": true, "truncation": true, "previous_response_id": true, "background": true,
}

// rsRequest is the subset of a Responses request the translation reads.
type rsRequest struct {
	Input              json.RawMessage `json:"input"`
	Instructions       *string         `json:"instructions"`
	MaxOutputTokens    *int            `json:"max_output_tokens"`
	Temperature        *float64        `json:"temperature"`
	TopP               *float64        `json:"top_p"`
	Stream             bool            `json:"stream"`
	Tools              []rsTool        `json:"tools"`
	ToolChoice         json.RawMessage `json:"tool_choice"`
	ParallelToolCalls  *bool           `json:"parallel_tool_calls"`
	User               string          `json:"user"`
	Reasoning          *rsReasoning    `json:"reasoning"`
	Text               *rsText         `json:"text"`
	Store              *bool           `json:"store"`
	Truncation         *string         `json:"truncation"`
	PreviousResponseID *string         `json:"previous_response_id"`
	Background         *bool           `json:"background"`
}

type rsTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

type rsReasoning struct {
	Effort *string `json:"effort"`
}

type rsText struct {
	Format *struct {
		Type string `json:"type"`
	} `json:"format"`
}

// rsItem is one input item: a message (type "message" or absent), a
// function call the model made, or the output the client computed for one.
type rsItem struct {
	Type      string          `json:"type"`
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	CallID    string          `json:"call_id"`
	Name      string          `json:"name"`
	Arguments string          `json:"arguments"`
	Output    json.RawMessage `json:"output"`
}

// rsPart is one content part of an input message.
type rsPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL string `json:"image_url"`
	FileID   string `json:"file_id"`
	Detail   string `json:"detail"`
}

// rsEcho is what the response object repeats from the request.
type rsEcho struct {
	Instructions    *string
	MaxOutputTokens *int
	Temperature     *float64
	TopP            *float64
	Tools           []rsTool
	ToolChoice      json.RawMessage
	Parallel        bool
}

// Request builds the Chat Completions request.
func (t *responsesToChat) Request(body []byte) (Request, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return Request{}, invalid("The request body must be a JSON object: %s", jsonProblem(err))
	}
	for k, v := range fields {
		if !responsesFieldsMapped[k] && string(v) != "null" {
			return Request{}, unsupported("The field %q is not supported by this model's backend (OpenAI Chat Completions).", k)
		}
	}
	var in rsRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return Request{}, invalid("The request body does not match the Responses schema: %s", jsonProblem(err))
	}
	if err := refuseStateful(&in); err != nil {
		return Request{}, err
	}
	if in.Text != nil && in.Text.Format != nil && in.Text.Format.Type != "text" {
		return Request{}, unsupported("text.format: the format %q is not supported by this model's backend (OpenAI Chat Completions).", in.Text.Format.Type)
	}
	t.stream = in.Stream
	out := oaChatRequest{Model: t.opts.Model, Stream: in.Stream, Temperature: in.Temperature, TopP: in.TopP, User: in.User, ParallelToolCalls: in.ParallelToolCalls}
	if in.MaxOutputTokens != nil {
		if *in.MaxOutputTokens < 1 {
			return Request{}, invalid("max_output_tokens must be a positive integer.")
		}
		out.MaxTokens = in.MaxOutputTokens
	}
	if in.Stream {
		out.StreamOptions = &oaStreamOptions{IncludeUsage: true}
	}
	if in.Reasoning != nil && in.Reasoning.Effort != nil {
		out.ReasoningEffort = *in.Reasoning.Effort
	}
	if in.Instructions != nil && *in.Instructions != "" {
		s, _ := json.Marshal(*in.Instructions)
		out.Messages = append(out.Messages, oaMessage{Role: "system", Content: s})
	}
	msgs, err := inputMessages(in.Input)
	if err != nil {
		return Request{}, err
	}
	out.Messages = append(out.Messages, msgs...)
	for i, tl := range in.Tools {
		if tl.Type != "function" {
			return Request{}, unsupported("tools.%d: the tool type %q is not supported by this model's backend (OpenAI Chat Completions); only function tools are.", i, tl.Type)
		}
		out.Tools = append(out.Tools, oaTool{Type: "function", Function: oaFunction{Name: tl.Name, Description: tl.Description, Parameters: tl.Parameters, Strict: tl.Strict}})
	}
	if out.ToolChoice, err = responsesToolChoice(in.ToolChoice); err != nil {
		return Request{}, err
	}
	t.echo = rsEcho{Instructions: in.Instructions, MaxOutputTokens: in.MaxOutputTokens, Temperature: in.Temperature, TopP: in.TopP,
		Tools: in.Tools, ToolChoice: in.ToolChoice, Parallel: in.ParallelToolCalls == nil || *in.ParallelToolCalls}
	t.st.t = t
	b, err := json.Marshal(out)
	if err != nil {
		return Request{}, fmt.Errorf("cannot encode OpenAI request: %w", err)
	}
	return Request{Body: b, Path: "/v1/chat/completions", Stream: in.Stream}, nil
}

// refuseStateful refuses the fields that need a server keeping responses.
func refuseStateful(in *rsRequest) error {
	const why = "; this model's backend serves the Responses API statelessly: send the whole conversation in input."
	switch {
	case in.PreviousResponseID != nil:
		return &RequestError{Kind: ErrStateful, Msg: "The field \"previous_response_id\" is not supported" + why}
	case in.Store != nil && *in.Store:
		return &RequestError{Kind: ErrStateful, Msg: "The field \"store\" must be false or absent" + why}
	case in.Background != nil && *in.Background:
		return &RequestError{Kind: ErrStateful, Msg: "The field \"background\" must be false or absent" + why}
	case in.Truncation != nil && *in.Truncation != "disabled":
		return unsupported("truncation: %q is not supported by this model's backend (OpenAI Chat Completions).", *in.Truncation)
	}
	return nil
}

// inputMessages turns input (a string or a list of items) into chat
// messages. Consecutive function_call items become one assistant message
// with tool_calls, joined to the assistant message just before them.
func inputMessages(raw json.RawMessage) ([]oaMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, invalid("input: Field required (a string or a list of input items).")
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []oaMessage{{Role: "user", Content: raw}}, nil
	}
	var items []rsItem
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, invalid("input must be a string or a list of input items: %s", jsonProblem(err))
	}
	if len(items) == 0 {
		return nil, invalid("input: at least one input item is required.")
	}
	var out []oaMessage
	for i, it := range items {
		at := fmt.Sprintf("input.%d", i)
		switch it.Type {
		case "", "message":
			m, err := inputMessage(it, at)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		case "function_call":
			call := oaToolCall{ID: it.CallID, Type: "function", Function: oaFunctionCall{Name: it.Name, Arguments: it.Arguments}}
			if it.CallID == "" || it.Name == "" {
				return nil, invalid("%s: a function_call item needs call_id and name.", at)
			}
			if n := len(out); n > 0 && out[n-1].Role == "assistant" {
				out[n-1].ToolCalls = append(out[n-1].ToolCalls, call)
				continue
			}
			out = append(out, oaMessage{Role: "assistant", ToolCalls: []oaToolCall{call}})
		case "function_call_output":
			if it.CallID == "" {
				return nil, invalid("%s: a function_call_output item needs call_id.", at)
			}
			text, err := outputText(it.Output, at)
			if err != nil {
				return nil, err
			}
			out = append(out, oaMessage{Role: "tool", ToolCallID: it.CallID, Content: text})
		case "reasoning":
			// Reasoning the model produced earlier; a chat backend reasons afresh.
		default:
			return nil, unsupported("%s: the input item type %q is not supported by this model's backend (OpenAI Chat Completions).", at, it.Type)
		}
	}
	return out, nil
}

// inputMessage translates one message item.
func inputMessage(it rsItem, at string) (oaMessage, error) {
	role := it.Role
	switch role {
	case "user", "assistant", "system":
	case "developer":
		role = "system"
	default:
		return oaMessage{}, invalid("%s.role must be user, assistant, system or developer.", at)
	}
	var s string
	if json.Unmarshal(it.Content, &s) == nil {
		return oaMessage{Role: role, Content: it.Content}, nil
	}
	var parts []rsPart
	if err := json.Unmarshal(it.Content, &parts); err != nil {
		return oaMessage{}, invalid("%s.content must be a string or a list of content parts.", at)
	}
	var out []oaPart
	var text strings.Builder
	for j, p := range parts {
		switch p.Type {
		case "input_text", "output_text":
			out = append(out, oaPart{Type: "text", Text: p.Text})
			text.WriteString(p.Text)
		case "refusal":
			text.WriteString(p.Text)
		case "input_image":
			if p.ImageURL == "" {
				return oaMessage{}, unsupported("%s.content.%d: images by file_id are not supported by this model's backend; send image_url.", at, j)
			}
			out = append(out, oaPart{Type: "image_url", ImageURL: &oaImageURL{URL: p.ImageURL, Detail: p.Detail}})
		default:
			return oaMessage{}, unsupported("%s.content.%d: the content type %q is not supported by this model's backend (OpenAI Chat Completions).", at, j, p.Type)
		}
	}
	if role != "user" {
		// Chat takes images from users only, and plain text from the rest.
		for _, p := range out {
			if p.Type != "text" {
				return oaMessage{}, unsupported("%s: images in %s messages are not supported by this model's backend.", at, it.Role)
			}
		}
		c, _ := json.Marshal(text.String())
		return oaMessage{Role: role, Content: c}, nil
	}
	c, err := json.Marshal(out)
	if err != nil {
		return oaMessage{}, fmt.Errorf("cannot encode content parts: %w", err)
	}
	return oaMessage{Role: role, Content: c}, nil
}

// outputText is a function_call_output's output as a JSON string: a
// string as is, a list of input_text parts joined.
func outputText(raw json.RawMessage, at string) (json.RawMessage, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return raw, nil
	}
	var parts []rsPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, invalid("%s.output must be a string or a list of content parts.", at)
	}
	var b strings.Builder
	for j, p := range parts {
		if p.Type != "input_text" {
			return nil, unsupported("%s.output.%d: the content type %q is not supported by this model's backend (OpenAI Chat Completions).", at, j, p.Type)
		}
		b.WriteString(p.Text)
	}
	out, _ := json.Marshal(b.String())
	return out, nil
}

// responsesToolChoice maps a Responses tool_choice to Chat's: the mode strings
// are the same; a named function moves its name under "function".
func responsesToolChoice(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var mode string
	if json.Unmarshal(raw, &mode) == nil {
		switch mode {
		case "auto", "none", "required":
			return raw, nil
		}
		return nil, invalid("tool_choice must be auto, none, required or a function.")
	}
	var named struct {
		Type string `json:"type"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal(raw, &named); err != nil || named.Type != "function" || named.Name == "" {
		return nil, unsupported("tool_choice: only auto, none, required and {\"type\":\"function\",\"name\":...} are supported by this model's backend.")
	}
	out, _ := json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": named.Name}})
	return out, nil
}

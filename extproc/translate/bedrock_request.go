package translate

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/smithy-go/encoding/httpbinding"
)

// bedrockName names the Bedrock protocol in messages to clients.
const bedrockName = "AWS Bedrock Converse"

// Bedrock Converse wire types (POST /model/{modelId}/converse and
// /converse-stream). Only the fields the gateway writes or reads.

type bdRequest struct {
	Messages        []bdMessage        `json:"messages"`
	System          []bdBlock          `json:"system,omitempty"`
	InferenceConfig *bdInferenceConfig `json:"inferenceConfig,omitempty"`
	ToolConfig      *bdToolConfig      `json:"toolConfig,omitempty"`
	Additional      map[string]any     `json:"additionalModelRequestFields,omitempty"`
}

type bdMessage struct {
	Role    string    `json:"role"`
	Content []bdBlock `json:"content"`
}

type bdBlock struct {
	Text             *string         `json:"text,omitempty"`
	Image            *bdImage        `json:"image,omitempty"`
	ToolUse          *bdToolUse      `json:"toolUse,omitempty"`
	ToolResult       *bdToolResult   `json:"toolResult,omitempty"`
	ReasoningContent *bdReasoning    `json:"reasoningContent,omitempty"`
	JSON             json.RawMessage `json:"json,omitempty"`
}

type bdImage struct {
	Format string `json:"format"`
	Source struct {
		Bytes string `json:"bytes"`
	} `json:"source"`
}

type bdToolUse struct {
	ToolUseID string          `json:"toolUseId"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
}

type bdToolResult struct {
	ToolUseID string    `json:"toolUseId"`
	Content   []bdBlock `json:"content"`
	Status    string    `json:"status,omitempty"`
}

type bdReasoning struct {
	ReasoningText *struct {
		Text      string  `json:"text"`
		Signature *string `json:"signature,omitempty"`
	} `json:"reasoningText,omitempty"`
	RedactedContent string `json:"redactedContent,omitempty"`
}

type bdInferenceConfig struct {
	MaxTokens     int      `json:"maxTokens,omitempty"`
	Temperature   *float64 `json:"temperature,omitempty"`
	TopP          *float64 `json:"topP,omitempty"`
	StopSequences []string `json:"stopSequences,omitempty"`
}

type bdToolConfig struct {
	Tools      []bdTool        `json:"tools"`
	ToolChoice json.RawMessage `json:"toolChoice,omitempty"`
}

type bdTool struct {
	ToolSpec struct {
		Name        string `json:"name"`
		Description string `json:"description,omitempty"`
		InputSchema struct {
			JSON json.RawMessage `json:"json"`
		} `json:"inputSchema"`
	} `json:"toolSpec"`
}

type bdResponse struct {
	Output struct {
		Message *bdMessage `json:"message"`
	} `json:"output"`
	StopReason string  `json:"stopReason"`
	Usage      bdUsage `json:"usage"`
}

type bdUsage struct {
	InputTokens           int `json:"inputTokens"`
	OutputTokens          int `json:"outputTokens"`
	CacheReadInputTokens  int `json:"cacheReadInputTokens"`
	CacheWriteInputTokens int `json:"cacheWriteInputTokens"`
}

// bedrockPath is the Converse path for model: the model id (which may
// hold ':' as in anthropic.claude-3-haiku-20240307-v1:0, or be an ARN) is
// escaped as one path segment, as the AWS SDK does.
func bedrockPath(model string, stream bool) string {
	op := "/converse"
	if stream {
		op = "/converse-stream"
	}
	return "/model/" + httpbinding.EscapePath(model, true) + op
}

// bedrockRequest builds the Converse request for an Anthropic Messages
// request, which the Converse API mirrors closely.
func bedrockRequest(in anRequest, model string) (Request, error) {
	out := bdRequest{InferenceConfig: &bdInferenceConfig{MaxTokens: in.MaxTokens, Temperature: in.Temperature, TopP: in.TopP, StopSequences: in.StopSequences}}
	var err error
	if out.System, err = bedrockSystem(in.System); err != nil {
		return Request{}, err
	}
	for i, m := range in.Messages {
		bm, err := bedrockMessage(m, fmt.Sprintf("messages.%d", i))
		if err != nil {
			return Request{}, err
		}
		out.Messages = append(out.Messages, bm)
	}
	if len(out.Messages) == 0 {
		return Request{}, invalid("messages: at least one message is required.")
	}
	if out.ToolConfig, err = bedrockTools(in.Tools, in.ToolChoice); err != nil {
		return Request{}, err
	}
	if in.TopK != nil {
		out.Additional = map[string]any{"top_k": *in.TopK}
	}
	if in.Thinking != nil && in.Thinking.Type == "enabled" {
		if out.Additional == nil {
			out.Additional = map[string]any{}
		}
		out.Additional["thinking"] = in.Thinking
	}
	b, err := json.Marshal(out)
	if err != nil {
		return Request{}, fmt.Errorf("cannot encode Bedrock request: %w", err)
	}
	return Request{Body: b, Path: bedrockPath(model, in.Stream), Headers: [][2]string{{"content-type", "application/json"}}, Stream: in.Stream}, nil
}

func bedrockSystem(raw json.RawMessage) ([]bdBlock, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []bdBlock{{Text: &s}}, nil
	}
	var blocks []anBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, invalid("system must be a string or an array of text blocks.")
	}
	out := make([]bdBlock, 0, len(blocks))
	for i, b := range blocks {
		if b.Type != "text" {
			return nil, unsupported("system.%d: blocks of type %q are not supported by this model's backend (%s).", i, b.Type, bedrockName)
		}
		out = append(out, bdBlock{Text: &b.Text})
	}
	return out, nil
}

func bedrockMessage(m anMessage, where string) (bdMessage, error) {
	if m.Role != "user" && m.Role != "assistant" {
		return bdMessage{}, invalid("%s.role must be user or assistant.", where)
	}
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return bdMessage{Role: m.Role, Content: []bdBlock{{Text: &s}}}, nil
	}
	var blocks []anBlock
	if err := json.Unmarshal(m.Content, &blocks); err != nil {
		return bdMessage{}, invalid("%s.content must be a string or an array of content blocks.", where)
	}
	out := bdMessage{Role: m.Role, Content: make([]bdBlock, 0, len(blocks))}
	for k, b := range blocks {
		bb, err := bedrockBlock(b, fmt.Sprintf("%s.content.%d", where, k))
		if err != nil {
			return bdMessage{}, err
		}
		out.Content = append(out.Content, bb)
	}
	if len(out.Content) == 0 {
		return bdMessage{}, invalid("%s.content must not be empty.", where)
	}
	return out, nil
}

func bedrockBlock(b anBlock, where string) (bdBlock, error) {
	switch b.Type {
	case "text":
		return bdBlock{Text: &b.Text}, nil
	case "image":
		if b.Source == nil || b.Source.Type != "base64" {
			return bdBlock{}, unsupported("%s: only base64 images are supported by this model's backend (%s).", where, bedrockName)
		}
		format, ok := strings.CutPrefix(b.Source.MediaType, "image/")
		if !ok || format == "" {
			return bdBlock{}, invalid("%s.source.media_type must be an image type.", where)
		}
		img := &bdImage{Format: format}
		img.Source.Bytes = b.Source.Data
		return bdBlock{Image: img}, nil
	case "tool_use":
		input := b.Input
		if len(input) == 0 {
			input = json.RawMessage("{}")
		}
		return bdBlock{ToolUse: &bdToolUse{ToolUseID: b.ID, Name: b.Name, Input: input}}, nil
	case "tool_result":
		return bedrockToolResult(b, where)
	case "thinking":
		r := &bdReasoning{ReasoningText: &struct {
			Text      string  `json:"text"`
			Signature *string `json:"signature,omitempty"`
		}{Text: b.Thinking, Signature: b.Signature}}
		return bdBlock{ReasoningContent: r}, nil
	case "redacted_thinking":
		return bdBlock{ReasoningContent: &bdReasoning{RedactedContent: b.Data}}, nil
	}
	return bdBlock{}, unsupported("%s: blocks of type %q are not supported by this model's backend (%s).", where, b.Type, bedrockName)
}

func bedrockToolResult(b anBlock, where string) (bdBlock, error) {
	r := &bdToolResult{ToolUseID: b.ToolUseID}
	if b.IsError {
		r.Status = "error"
	}
	if len(b.Content) > 0 && string(b.Content) != "null" {
		var s string
		if json.Unmarshal(b.Content, &s) == nil {
			r.Content = []bdBlock{{Text: &s}}
		} else {
			var parts []anBlock
			if err := json.Unmarshal(b.Content, &parts); err != nil {
				return bdBlock{}, invalid("%s.content must be a string or an array of content blocks.", where)
			}
			for k, p := range parts {
				pb, err := bedrockBlock(p, fmt.Sprintf("%s.content.%d", where, k))
				if err != nil {
					return bdBlock{}, err
				}
				r.Content = append(r.Content, pb)
			}
		}
	}
	if len(r.Content) == 0 {
		empty := ""
		r.Content = []bdBlock{{Text: &empty}}
	}
	return bdBlock{ToolResult: r}, nil
}

func bedrockTools(tools []anTool, choice *anToolChoice) (*bdToolConfig, error) {
	if len(tools) == 0 {
		if choice != nil && choice.Type != "auto" && choice.Type != "none" {
			return nil, invalid("tool_choice needs tools.")
		}
		return nil, nil
	}
	tc := &bdToolConfig{}
	for i, t := range tools {
		if t.Type != "" && t.Type != "custom" {
			return nil, unsupported("tools.%d: the server tool %q is not supported by this model's backend (%s).", i, t.Type, bedrockName)
		}
		var bt bdTool
		bt.ToolSpec.Name, bt.ToolSpec.Description = t.Name, t.Description
		bt.ToolSpec.InputSchema.JSON = t.InputSchema
		if len(t.InputSchema) == 0 || string(t.InputSchema) == "null" {
			bt.ToolSpec.InputSchema.JSON = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		tc.Tools = append(tc.Tools, bt)
	}
	if choice == nil {
		return tc, nil
	}
	if choice.DisableParallelToolUse {
		return nil, unsupported("Turning parallel tool use off is not supported by this model's backend (%s).", bedrockName)
	}
	switch choice.Type {
	case "auto":
		tc.ToolChoice = json.RawMessage(`{"auto":{}}`)
	case "any":
		tc.ToolChoice = json.RawMessage(`{"any":{}}`)
	case "tool":
		tc.ToolChoice, _ = json.Marshal(map[string]any{"tool": map[string]string{"name": choice.Name}})
	default:
		return nil, unsupported("tool_choice %q is not supported by this model's backend (%s).", choice.Type, bedrockName)
	}
	return tc, nil
}

// renameBackend rewrites a refusal built for the Anthropic backend (the
// chat translation builds an Anthropic request first) to name Bedrock.
func renameBackend(err error) error { return renameBackendTo(err, bedrockName) }

// renameBackendTo rewrites a refusal built for the Anthropic backend to
// name the backend protocol name.
func renameBackendTo(err error, name string) error {
	var re *RequestError
	if errors.As(err, &re) {
		return &RequestError{Kind: re.Kind, Msg: strings.ReplaceAll(re.Msg, "(Anthropic Messages)", "("+name+")")}
	}
	return err
}

// newID returns opts.NewID() or a random id with prefix: Bedrock answers
// carry no id, the client APIs want one.
func (o Options) newID(prefix string) string {
	if o.NewID != nil {
		return prefix + o.NewID()
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

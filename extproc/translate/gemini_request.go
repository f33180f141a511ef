package translate

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// geminiName names the Gemini protocol in messages to clients.
const geminiName = "Google Gemini"

// Gemini generateContent wire types (POST /v1beta/models/{model}:generateContent
// and :streamGenerateContent?alt=sse; Vertex AI takes the same body). Only
// the fields the gateway writes or reads.

type gmRequest struct {
	Contents          []gmContent         `json:"contents"`
	SystemInstruction *gmContent          `json:"systemInstruction,omitempty"`
	Tools             []gmTool            `json:"tools,omitempty"`
	ToolConfig        *gmToolConfig       `json:"toolConfig,omitempty"`
	GenerationConfig  *gmGenerationConfig `json:"generationConfig,omitempty"`
}

type gmContent struct {
	Role  string   `json:"role,omitempty"`
	Parts []gmPart `json:"parts"`
}

type gmPart struct {
	Text             *string         `json:"text,omitempty"`
	Thought          bool            `json:"thought,omitempty"`
	ThoughtSignature string          `json:"thoughtSignature,omitempty"`
	InlineData       *gmBlob         `json:"inlineData,omitempty"`
	FunctionCall     *gmFunctionCall `json:"functionCall,omitempty"`
	FunctionResponse *gmFunctionResp `json:"functionResponse,omitempty"`
}

type gmBlob struct {
	MimeType string `json:"mimeType"`
	Data     string `json:"data"`
}

type gmFunctionCall struct {
	ID   string          `json:"id,omitempty"`
	Name string          `json:"name"`
	Args json.RawMessage `json:"args,omitempty"`
}

type gmFunctionResp struct {
	ID       string          `json:"id,omitempty"`
	Name     string          `json:"name"`
	Response json.RawMessage `json:"response"`
}

type gmTool struct {
	FunctionDeclarations []gmFunctionDecl `json:"functionDeclarations"`
}

// gmFunctionDecl carries the client's JSON Schema as parametersJsonSchema
// (Gemini API v1beta and Vertex AI v1), which takes JSON Schema as is
// (additionalProperties, $defs, ...), unlike parameters, an OpenAPI subset.
type gmFunctionDecl struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parametersJsonSchema,omitempty"`
}

type gmToolConfig struct {
	FunctionCallingConfig struct {
		Mode                 string   `json:"mode"`
		AllowedFunctionNames []string `json:"allowedFunctionNames,omitempty"`
	} `json:"functionCallingConfig"`
}

type gmGenerationConfig struct {
	gmChatOnly
	MaxOutputTokens int             `json:"maxOutputTokens,omitempty"`
	Temperature     *float64        `json:"temperature,omitempty"`
	TopP            *float64        `json:"topP,omitempty"`
	TopK            *int            `json:"topK,omitempty"`
	StopSequences   []string        `json:"stopSequences,omitempty"`
	ThinkingConfig  *gmThinkingConf `json:"thinkingConfig,omitempty"`
}

type gmThinkingConf struct {
	ThinkingBudget int `json:"thinkingBudget"`
}

// GeminiPath is the Gemini API path of model's generateContent (or, for a
// stream, streamGenerateContent with SSE framing). A Vertex AI backend
// takes the same method under its project and location (GeminiVertexPath).
func GeminiPath(model string, stream bool) string {
	return "/v1beta/models/" + url.PathEscape(model) + geminiMethod(stream)
}

func geminiMethod(stream bool) string {
	if stream {
		return ":streamGenerateContent?alt=sse"
	}
	return ":generateContent"
}

// gmChatOnly are the generationConfig fields only Chat Completions
// clients set (JSON mode, penalties, seed), which the intermediate
// Messages request cannot carry.
type gmChatOnly struct {
	ResponseMimeType   string          `json:"responseMimeType,omitempty"`
	ResponseJSONSchema json.RawMessage `json:"responseJsonSchema,omitempty"`
	PresencePenalty    *float64        `json:"presencePenalty,omitempty"`
	FrequencyPenalty   *float64        `json:"frequencyPenalty,omitempty"`
	Seed               *int64          `json:"seed,omitempty"`
}

// geminiRequest builds the generateContent request for an Anthropic
// Messages request; maxTokens 0 leaves the output cap to the model.
func geminiRequest(in anRequest, model string, maxTokens int, chat gmChatOnly) (Request, error) {
	gc := &gmGenerationConfig{gmChatOnly: chat, MaxOutputTokens: maxTokens, Temperature: in.Temperature, TopP: in.TopP, TopK: in.TopK, StopSequences: in.StopSequences}
	if in.Thinking != nil && in.Thinking.Type == "enabled" {
		gc.ThinkingConfig = &gmThinkingConf{ThinkingBudget: in.Thinking.BudgetTokens}
	}
	out := gmRequest{GenerationConfig: gc}
	sys, err := bedrockSystem(in.System)
	if err != nil {
		return Request{}, renameBackendTo(err, geminiName)
	}
	if len(sys) > 0 {
		out.SystemInstruction = &gmContent{}
		for _, b := range sys {
			out.SystemInstruction.Parts = append(out.SystemInstruction.Parts, gmPart{Text: b.Text})
		}
	}
	names := map[string]string{} // tool_use id → function name, for functionResponse
	for i, m := range in.Messages {
		c, err := geminiContent(m, fmt.Sprintf("messages.%d", i), names)
		if err != nil {
			return Request{}, err
		}
		out.Contents = append(out.Contents, c)
	}
	if len(out.Contents) == 0 {
		return Request{}, invalid("messages: at least one message is required.")
	}
	if out.Tools, out.ToolConfig, err = geminiTools(in.Tools, in.ToolChoice); err != nil {
		return Request{}, err
	}
	b, err := json.Marshal(out)
	if err != nil {
		return Request{}, fmt.Errorf("cannot encode Gemini request: %w", err)
	}
	return Request{Body: b, Path: GeminiPath(model, in.Stream), Headers: [][2]string{{"content-type", "application/json"}}, Stream: in.Stream}, nil
}

func geminiContent(m anMessage, where string, names map[string]string) (gmContent, error) {
	role := "user"
	switch m.Role {
	case "user":
	case "assistant":
		role = "model"
	default:
		return gmContent{}, invalid("%s.role must be user or assistant.", where)
	}
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return gmContent{Role: role, Parts: []gmPart{{Text: &s}}}, nil
	}
	var blocks []anBlock
	if err := json.Unmarshal(m.Content, &blocks); err != nil {
		return gmContent{}, invalid("%s.content must be a string or an array of content blocks.", where)
	}
	out := gmContent{Role: role, Parts: make([]gmPart, 0, len(blocks))}
	for k, b := range blocks {
		p, skip, err := geminiPart(b, fmt.Sprintf("%s.content.%d", where, k), names)
		if err != nil {
			return gmContent{}, err
		}
		if !skip {
			out.Parts = append(out.Parts, p)
		}
	}
	if len(out.Parts) == 0 {
		return gmContent{}, invalid("%s.content must not be empty.", where)
	}
	return out, nil
}

// geminiPart converts one content block; thinking blocks from an earlier
// turn are dropped (skip), since Gemini keeps no Anthropic signatures.
func geminiPart(b anBlock, where string, names map[string]string) (p gmPart, skip bool, err error) {
	switch b.Type {
	case "text":
		return gmPart{Text: &b.Text}, false, nil
	case "image":
		if b.Source == nil || b.Source.Type != "base64" {
			return gmPart{}, false, unsupported("%s: only base64 images are supported by this model's backend (%s).", where, geminiName)
		}
		if !strings.HasPrefix(b.Source.MediaType, "image/") {
			return gmPart{}, false, invalid("%s.source.media_type must be an image type.", where)
		}
		return gmPart{InlineData: &gmBlob{MimeType: b.Source.MediaType, Data: b.Source.Data}}, false, nil
	case "tool_use":
		names[b.ID] = b.Name
		args := b.Input
		if len(args) == 0 || string(args) == "null" {
			args = json.RawMessage("{}")
		}
		_, sig, _ := strings.Cut(b.ID, thoughtMark)
		return gmPart{FunctionCall: &gmFunctionCall{Name: b.Name, Args: args}, ThoughtSignature: sig}, false, nil
	case "tool_result":
		p, err := geminiToolResult(b, where, names)
		return p, false, err
	case "thinking", "redacted_thinking":
		return gmPart{}, true, nil
	}
	return gmPart{}, false, unsupported("%s: blocks of type %q are not supported by this model's backend (%s).", where, b.Type, geminiName)
}

// geminiToolResult makes a functionResponse: Gemini names the function
// (not a call id), so the name comes from the tool_use block the result
// answers; the response object holds "output" (or "error") as Google's
// SDKs do.
func geminiToolResult(b anBlock, where string, names map[string]string) (gmPart, error) {
	name, ok := names[b.ToolUseID]
	if !ok {
		return gmPart{}, invalid("%s.tool_use_id %q answers no earlier tool call.", where, b.ToolUseID)
	}
	var text strings.Builder
	if len(b.Content) > 0 && string(b.Content) != "null" {
		var s string
		if json.Unmarshal(b.Content, &s) == nil {
			text.WriteString(s)
		} else {
			var parts []anBlock
			if err := json.Unmarshal(b.Content, &parts); err != nil {
				return gmPart{}, invalid("%s.content must be a string or an array of content blocks.", where)
			}
			for k, p := range parts {
				if p.Type != "text" {
					return gmPart{}, unsupported("%s.content.%d: tool results may only hold text for this model's backend (%s).", where, k, geminiName)
				}
				text.WriteString(p.Text)
			}
		}
	}
	key := "output"
	if b.IsError {
		key = "error"
	}
	resp, _ := json.Marshal(map[string]string{key: text.String()})
	return gmPart{FunctionResponse: &gmFunctionResp{Name: name, Response: resp}}, nil
}

func geminiTools(tools []anTool, choice *anToolChoice) ([]gmTool, *gmToolConfig, error) {
	if len(tools) == 0 {
		if choice != nil && choice.Type != "auto" && choice.Type != "none" {
			return nil, nil, invalid("tool_choice needs tools.")
		}
		return nil, nil, nil
	}
	decls := make([]gmFunctionDecl, 0, len(tools))
	for i, t := range tools {
		if t.Type != "" && t.Type != "custom" {
			return nil, nil, unsupported("tools.%d: the server tool %q is not supported by this model's backend (%s).", i, t.Type, geminiName)
		}
		d := gmFunctionDecl{Name: t.Name, Description: t.Description}
		if len(t.InputSchema) > 0 && string(t.InputSchema) != "null" {
			d.Parameters = t.InputSchema
		}
		decls = append(decls, d)
	}
	out := []gmTool{{FunctionDeclarations: decls}}
	if choice == nil {
		return out, nil, nil
	}
	if choice.DisableParallelToolUse {
		return nil, nil, unsupported("Turning parallel tool use off is not supported by this model's backend (%s).", geminiName)
	}
	tc := &gmToolConfig{}
	switch choice.Type {
	case "auto":
		tc.FunctionCallingConfig.Mode = "AUTO"
	case "any":
		tc.FunctionCallingConfig.Mode = "ANY"
	case "none":
		tc.FunctionCallingConfig.Mode = "NONE"
	case "tool":
		tc.FunctionCallingConfig.Mode = "ANY"
		tc.FunctionCallingConfig.AllowedFunctionNames = []string{choice.Name}
	default:
		return nil, nil, unsupported("tool_choice %q is not supported by this model's backend (%s).", choice.Type, geminiName)
	}
	return out, tc, nil
}

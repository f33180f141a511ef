package fakellm

import "strings"

// Tool calls in the OpenAI chat mode: when a chat request offers tools
// (and tool_choice is not "none") and its last message is not a tool
// result, the answer ends in one call of the first tool with FakeToolInput
// and finish_reason "tool_calls". Streamed, the call's arguments arrive in
// three pieces after a first delta carrying its id and name.

// FakeToolCallID is the id of every OpenAI tool call the fake server makes.
const FakeToolCallID = "call_fake01"

type chatTool struct {
	Function struct {
		Name string `json:"name"`
	} `json:"function"`
}

type toolCall struct {
	Index    *int         `json:"index,omitempty"`
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Function functionCall `json:"function"`
}

type functionCall struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// planToolCall decides whether the answer to req ends in a tool call.
func (c *completion) planToolCall(req chatRequest) {
	if len(req.Tools) == 0 || strings.Trim(string(req.ToolChoice), `" `) == "none" || c.finish != "stop" {
		return
	}
	if n := len(req.Messages); n > 0 && req.Messages[n-1].Role == "tool" {
		return
	}
	c.tool, c.finish = req.Tools[0].Function.Name, "tool_calls"
}

// toolCalls returns the non-streaming message's tool calls.
func (c *completion) toolCalls() []toolCall {
	if c.tool == "" {
		return nil
	}
	return []toolCall{{ID: FakeToolCallID, Type: "function", Function: functionCall{Name: c.tool, Arguments: FakeToolInput}}}
}

// streamToolCall sends the tool call's chunks, if any; false means the
// client went away.
func (c *completion) streamToolCall(send func([]byte) bool) bool {
	if c.tool == "" {
		return true
	}
	zero := 0
	first := toolCall{Index: &zero, ID: FakeToolCallID, Type: "function", Function: functionCall{Name: c.tool}}
	if !send(c.chunk(chatDelta{ToolCalls: []toolCall{first}}, "", nil)) {
		return false
	}
	in := FakeToolInput
	for _, piece := range []string{in[:5], in[5:17], in[17:]} {
		d := chatDelta{ToolCalls: []toolCall{{Index: &zero, Function: functionCall{Arguments: piece}}}}
		if !send(c.chunk(d, "", nil)) {
			return false
		}
	}
	return true
}

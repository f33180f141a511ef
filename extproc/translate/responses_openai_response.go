package translate

import (
	"encoding/json"
	"net/http"

	"github.com/tidwall/gjson"
)

// Responses API wire types: the response object and its output items.

type rsResponse struct {
	ID                string            `json:"id"`
	Object            string            `json:"object"`
	CreatedAt         int64             `json:"created_at"`
	Status            string            `json:"status"`
	Error             *rsError          `json:"error"`
	IncompleteDetails *rsIncomplete     `json:"incomplete_details"`
	Instructions      *string           `json:"instructions"`
	MaxOutputTokens   *int              `json:"max_output_tokens"`
	Model             string            `json:"model"`
	Output            []json.RawMessage `json:"output"`
	ParallelToolCalls bool              `json:"parallel_tool_calls"`
	Temperature       *float64          `json:"temperature"`
	ToolChoice        json.RawMessage   `json:"tool_choice"`
	Tools             []rsTool          `json:"tools"`
	TopP              *float64          `json:"top_p"`
	Usage             *rsUsage          `json:"usage"`
}

type rsError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type rsIncomplete struct {
	Reason string `json:"reason"`
}

type rsUsage struct {
	InputTokens         int             `json:"input_tokens"`
	InputTokensDetails  rsInputDetails  `json:"input_tokens_details"`
	OutputTokens        int             `json:"output_tokens"`
	OutputTokensDetails rsOutputDetails `json:"output_tokens_details"`
	TotalTokens         int             `json:"total_tokens"`
}

type rsInputDetails struct {
	CachedTokens int `json:"cached_tokens"`
}

type rsOutputDetails struct {
	ReasoningTokens int `json:"reasoning_tokens"`
}

type rsMessageItem struct {
	Type    string         `json:"type"`
	ID      string         `json:"id"`
	Status  string         `json:"status"`
	Role    string         `json:"role"`
	Content []rsOutputText `json:"content"`
}

type rsOutputText struct {
	Type        string     `json:"type"`
	Text        string     `json:"text"`
	Annotations []struct{} `json:"annotations"`
}

type rsFunctionCallItem struct {
	Type      string `json:"type"`
	ID        string `json:"id"`
	CallID    string `json:"call_id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
	Status    string `json:"status"`
}

type rsReasoningItem struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Summary []rsSummaryText `json:"summary"`
}

type rsSummaryText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// Response translates a chat.completion or error body into a Responses
// response object or an OpenAI error body (the Responses API's own shape).
func (t *responsesToChat) Response(status int, body []byte) (int, []byte) {
	if status >= http.StatusBadRequest {
		if gjson.GetBytes(body, "error.message").Type == gjson.String {
			return status, body
		}
		return status, openAIError(http.StatusText(status), "server_error", "upstream_error")
	}
	var in oaChatCompletion
	if err := json.Unmarshal(body, &in); err != nil || len(in.Choices) == 0 {
		return http.StatusBadGateway, openAIError("The model backend returned a response the gateway cannot translate.", "server_error", "bad_gateway")
	}
	c := in.Choices[0]
	out := t.response(in.ID, in.Model, in.Created, "completed")
	if r := c.Message.reasoning(); r != "" {
		out.Output = append(out.Output, mustJSON(rsReasoningItem{Type: "reasoning", ID: "rs_" + in.ID, Summary: []rsSummaryText{{Type: "summary_text", Text: r}}}))
	}
	if c.Message.Content != nil && *c.Message.Content != "" {
		out.Output = append(out.Output, mustJSON(messageItem("msg_"+in.ID, *c.Message.Content, "completed")))
	}
	for _, tc := range c.Message.ToolCalls {
		out.Output = append(out.Output, mustJSON(rsFunctionCallItem{Type: "function_call", ID: "fc_" + tc.ID, CallID: tc.ID,
			Name: tc.Function.Name, Arguments: tc.Function.Arguments, Status: "completed"}))
	}
	out.Status, out.IncompleteDetails = responseStatus(c.FinishReason)
	if in.Usage != nil {
		out.Usage = responsesUsage(*in.Usage)
	}
	return status, mustJSON(out)
}

// response is the response object's frame: everything but output, usage
// and the outcome. created is the backend's (0: now).
func (t *responsesToChat) response(id, model string, created int64, status string) rsResponse {
	if created == 0 {
		created = t.opts.now().Unix()
	}
	e := &t.echo
	out := rsResponse{ID: "resp_" + id, Object: "response", CreatedAt: created, Status: status, Model: model,
		Output: []json.RawMessage{}, Instructions: e.Instructions, MaxOutputTokens: e.MaxOutputTokens, Temperature: e.Temperature,
		TopP: e.TopP, Tools: e.Tools, ToolChoice: e.ToolChoice, ParallelToolCalls: e.Parallel}
	if out.Tools == nil {
		out.Tools = []rsTool{}
	}
	if len(out.ToolChoice) == 0 || string(out.ToolChoice) == "null" {
		out.ToolChoice = json.RawMessage(`"auto"`)
	}
	return out
}

func messageItem(id, text, status string) rsMessageItem {
	c := []rsOutputText{}
	if status == "completed" || text != "" {
		c = append(c, rsOutputText{Type: "output_text", Text: text, Annotations: []struct{}{}})
	}
	return rsMessageItem{Type: "message", ID: id, Status: status, Role: "assistant", Content: c}
}

// responseStatus maps a chat finish_reason to the response's status.
func responseStatus(finish string) (string, *rsIncomplete) {
	switch finish {
	case "length":
		return "incomplete", &rsIncomplete{Reason: "max_output_tokens"}
	case "content_filter":
		return "incomplete", &rsIncomplete{Reason: "content_filter"}
	}
	return "completed", nil
}

func responsesUsage(u oaUsage) *rsUsage {
	out := &rsUsage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens, TotalTokens: u.PromptTokens + u.CompletionTokens}
	if u.PromptTokensDetails != nil {
		out.InputTokensDetails.CachedTokens = u.PromptTokensDetails.CachedTokens
	}
	return out
}

// mustJSON encodes a value built of plain types, which cannot fail.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("translate: cannot encode " + err.Error())
	}
	return b
}

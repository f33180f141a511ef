package translate

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/tidwall/gjson"
)

type gmResponse struct {
	Candidates []struct {
		Content      *gmContent `json:"content"`
		FinishReason string     `json:"finishReason"`
	} `json:"candidates"`
	PromptFeedback *struct {
		BlockReason string `json:"blockReason"`
	} `json:"promptFeedback"`
	UsageMetadata gmUsage `json:"usageMetadata"`
}

type gmUsage struct {
	PromptTokenCount        int `json:"promptTokenCount"`
	CandidatesTokenCount    int `json:"candidatesTokenCount"`
	CachedContentTokenCount int `json:"cachedContentTokenCount"`
	ThoughtsTokenCount      int `json:"thoughtsTokenCount"`
}

// anthropicUsageOfGemini maps Gemini usage to Anthropic's: promptTokenCount
// includes the cached tokens, which input_tokens leaves out; thoughts are
// billed as output.
func anthropicUsageOfGemini(u gmUsage) anUsage {
	return anUsage{
		InputTokens:          max(u.PromptTokenCount-u.CachedContentTokenCount, 0),
		OutputTokens:         u.CandidatesTokenCount + u.ThoughtsTokenCount,
		CacheReadInputTokens: u.CachedContentTokenCount,
	}
}

func gmUsageOf(r gjson.Result) gmUsage {
	return gmUsage{
		PromptTokenCount: int(r.Get("promptTokenCount").Int()), CandidatesTokenCount: int(r.Get("candidatesTokenCount").Int()),
		CachedContentTokenCount: int(r.Get("cachedContentTokenCount").Int()), ThoughtsTokenCount: int(r.Get("thoughtsTokenCount").Int()),
	}
}

// thoughtMark joins a tool call id and the thoughtSignature of the
// function call it names: Gemini's thinking models want the signature back
// with the call in the next turn, and a client keeps only the id.
const thoughtMark = "__thought__"

// geminiToolID is the id of the k-th function call of an answer: Gemini
// names calls by function, so the gateway makes ids (keeping one Gemini
// sent), followed by the call's thought signature when it has one.
func geminiToolID(base string, k int, sent, signature string) string {
	id := sent
	if id == "" {
		id = "toolu_" + base + "_" + strconv.Itoa(k)
	}
	if signature != "" {
		id += thoughtMark + signature
	}
	return id
}

// geminiResponse converts a whole generateContent answer (or error) into
// an Anthropic message (or error) body; the message id begins with idPrefix.
func geminiResponse(status int, body []byte, opts Options, idPrefix string) (int, []byte) {
	if status >= http.StatusBadRequest {
		return geminiError(status, body)
	}
	var in gmResponse
	if err := json.Unmarshal(body, &in); err != nil {
		return http.StatusBadGateway, AnthropicErrorOfType("api_error", "The model backend returned a response the gateway cannot translate.")
	}
	base := opts.newID("")
	out := anResponse{ID: idPrefix + base, Type: "message", Role: "assistant", Model: opts.Model, Content: []anBlock{}, Usage: anthropicUsageOfGemini(in.UsageMetadata)}
	finish := ""
	if in.PromptFeedback != nil && in.PromptFeedback.BlockReason != "" {
		finish = "SAFETY"
	}
	tools := 0
	if len(in.Candidates) > 0 {
		c := in.Candidates[0]
		finish = c.FinishReason
		if c.Content != nil {
			for _, p := range c.Content.Parts {
				switch {
				case p.FunctionCall != nil:
					args := p.FunctionCall.Args
					if len(args) == 0 || string(args) == "null" {
						args = json.RawMessage("{}")
					}
					out.Content = append(out.Content, anBlock{Type: "tool_use", ID: geminiToolID(base, tools, p.FunctionCall.ID, p.ThoughtSignature), Name: p.FunctionCall.Name, Input: args})
					tools++
				case p.Text != nil && !p.Thought:
					out.Content = append(out.Content, anBlock{Type: "text", Text: *p.Text})
				}
			}
		}
	}
	stop := geminiStopReason(finish, tools > 0)
	out.StopReason = &stop
	b, err := json.Marshal(out)
	if err != nil {
		return http.StatusBadGateway, AnthropicErrorOfType("api_error", "The gateway failed to encode the response.")
	}
	return status, b
}

// geminiStopReason maps a Gemini finishReason to an Anthropic stop_reason;
// Gemini ends a turn that calls functions with STOP.
func geminiStopReason(finish string, calledTools bool) string {
	switch finish {
	case "MAX_TOKENS":
		return "max_tokens"
	case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE":
		return "refusal"
	}
	if calledTools {
		return "tool_use"
	}
	return "end_turn"
}

// geminiError maps a Google API error ({"error":{"code","message",
// "status"}}) to an Anthropic error with the client's status. A 401 or
// 403 (wrong token or permission) or the Gemini API's 400 API_KEY_INVALID
// is the gateway's configuration, not the client's: it becomes a 502
// saying so.
func geminiError(status int, body []byte) (int, []byte) {
	e := gjson.GetBytes(body, "error")
	if e.IsArray() { // some Google front ends wrap the error in an array
		e = e.Get("0.error")
	}
	msg := e.Get("message").Str
	if msg == "" {
		msg = http.StatusText(status)
	}
	keyInvalid := false
	e.Get("details").ForEach(func(_, d gjson.Result) bool {
		keyInvalid = keyInvalid || d.Get("reason").Str == "API_KEY_INVALID"
		return !keyInvalid
	})
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden || keyInvalid:
		return http.StatusBadGateway, AnthropicErrorOfType("api_error", "The model backend ("+geminiName+") refused the gateway's credentials: "+msg)
	}
	typ := geminiStatusType(e.Get("status").Str)
	if typ == "" {
		typ = anthropicErrorType(status)
	}
	return status, AnthropicErrorOfType(typ, msg)
}

// geminiStatusType maps a google.rpc status name to an Anthropic error
// type ("" for the status code's own).
func geminiStatusType(s string) string {
	switch s {
	case "RESOURCE_EXHAUSTED":
		return "rate_limit_error"
	case "INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE":
		return "invalid_request_error"
	case "NOT_FOUND":
		return "not_found_error"
	case "UNAVAILABLE":
		return "overloaded_error"
	case "INTERNAL", "DEADLINE_EXCEEDED", "UNKNOWN":
		return "api_error"
	}
	return ""
}

package fakegemini

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

type request struct {
	Contents []struct {
		Role  string `json:"role"`
		Parts []struct {
			Text             *string         `json:"text"`
			FunctionResponse json.RawMessage `json:"functionResponse"`
			FunctionCall     json.RawMessage `json:"functionCall"`
			InlineData       json.RawMessage `json:"inlineData"`
		} `json:"parts"`
	} `json:"contents"`
	Tools []struct {
		FunctionDeclarations []struct {
			Name                 string          `json:"name"`
			Parameters           json.RawMessage `json:"parameters"`
			ParametersJSONSchema json.RawMessage `json:"parametersJsonSchema"`
		} `json:"functionDeclarations"`
	} `json:"tools"`
}

// generate answers one generateContent or streamGenerateContent request.
func (s *Server) generate(w http.ResponseWriter, r *http.Request, stream bool) {
	var req request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid JSON payload received.")
		return
	}
	if len(req.Contents) == 0 {
		googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified\n")
		return
	}
	for _, tool := range req.Tools {
		for _, d := range tool.FunctionDeclarations {
			if d.Name == "" || (len(d.Parameters) > 0 && len(d.ParametersJSONSchema) > 0) {
				googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "A function declaration needs a name, and parameters and parametersJsonSchema are mutually exclusive.")
				return
			}
		}
	}
	last, answered := "", false
	for _, c := range req.Contents {
		if c.Role != "" && c.Role != "user" && c.Role != "model" {
			googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Please use a valid role: user, model.")
			return
		}
		for _, p := range c.Parts {
			if p.Text != nil {
				last = *p.Text
			}
			answered = answered || len(p.FunctionResponse) > 0
		}
	}
	switch {
	case strings.Contains(last, "fake:rate-limit"):
		googleError(w, http.StatusTooManyRequests, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).")
		return
	case strings.Contains(last, "fake:invalid"):
		googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Request contains an invalid argument.")
		return
	}
	var parts []string // JSON parts, each one SSE event when streaming
	if !answered && len(req.Tools) > 0 && len(req.Tools[0].FunctionDeclarations) > 0 {
		name, _ := json.Marshal(req.Tools[0].FunctionDeclarations[0].Name)
		parts = []string{`{"text": "Let me check."}`, `{"functionCall": {"name": ` + string(name) + `,"args": {"city": "Paris"}}}`}
	} else {
		parts = []string{`{"text": "The weather"}`, `{"text": " is sunny."}`}
	}
	usage := fmt.Sprintf(`{"promptTokenCount": %d,"candidatesTokenCount": %d,"totalTokenCount": %d,"cachedContentTokenCount": %d,"thoughtsTokenCount": %d}`,
		Usage.Prompt, Usage.Candidates, Usage.Prompt+Usage.Candidates+Usage.Thoughts, Usage.Cached, Usage.Thoughts)
	if !stream {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		fmt.Fprintf(w, `{"candidates": [{"content": {"parts": [%s],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": %s,"modelVersion": "gemini-fake","responseId": "fake-1"}`+"\n", strings.Join(parts, ","), usage)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fl, _ := w.(http.Flusher)
	for i, p := range parts {
		finish := ""
		u := fmt.Sprintf(`{"promptTokenCount": %d,"totalTokenCount": %d}`, Usage.Prompt, Usage.Prompt)
		if i == len(parts)-1 {
			finish, u = `,"finishReason": "STOP"`, usage
		}
		fmt.Fprintf(w, `data: {"candidates": [{"content": {"parts": [%s],"role": "model"}%s,"index": 0}],"usageMetadata": %s,"modelVersion": "gemini-fake","responseId": "fake-1"}`+"\r\n\r\n", p, finish, u)
		if fl != nil {
			fl.Flush()
		}
	}
}

package fakellm

import (
	"encoding/json"
	"io"
	"net/http"
	"time"
)

// Ollama mode: POST /api/chat answers like Ollama, streaming (its default)
// as newline-delimited JSON objects ending in one with "done": true and the
// token counts. When the request offers tools and its last message is not
// a tool result, the answer includes one line calling the first tool with
// FakeToolInput as an arguments object. Failures: "429", "500", "503"
// answer {"error": …} with that status; "midstream" sends an error line
// after half of the tokens.

type ollamaRequest struct {
	Model    string `json:"model"`
	Stream   *bool  `json:"stream"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	Tools []struct {
		Function struct{ Name string }
	} `json:"tools"`
	Options struct {
		NumPredict *int `json:"num_predict"`
	} `json:"options"`
}

func ollamaError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// serveOllamaChat answers POST /api/chat.
func (s *Server) serveOllamaChat(w http.ResponseWriter, r *http.Request) {
	s.countRequest()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.markCancelled()
		return
	}
	var req ollamaRequest
	decodeErr := json.Unmarshal(body, &req)
	s.recordBody(req.Model, len(body))
	if decodeErr == nil {
		w.Header().Set(HeaderReceivedModel, req.Model)
	}
	sc, err := parseScenario(r.Header, s.opts)
	switch {
	case err != nil:
		ollamaError(w, http.StatusBadRequest, err.Error())
		return
	case sc.fail == "429" || sc.fail == "500" || sc.fail == "503":
		status := map[string]int{"429": 429, "500": 500, "503": 503}[sc.fail]
		ollamaError(w, status, "injected failure "+sc.fail)
		return
	case decodeErr != nil:
		ollamaError(w, http.StatusBadRequest, "invalid request body: "+decodeErr.Error())
		return
	case req.Model == "":
		ollamaError(w, http.StatusBadRequest, "model is required")
		return
	}
	chars := 0
	for _, m := range req.Messages {
		chars += len(m.Content)
	}
	n, reason := sc.tokens, "stop"
	if p := req.Options.NumPredict; p != nil && *p >= 0 && *p < n {
		n, reason = *p, "length"
	}
	tool := ""
	if len(req.Tools) > 0 && (len(req.Messages) == 0 || req.Messages[len(req.Messages)-1].Role != "tool") {
		tool = req.Tools[0].Function.Name
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	line := func(content string, done bool, tool string) map[string]any {
		msg := map[string]any{"role": "assistant", "content": content}
		if tool != "" {
			msg["tool_calls"] = []any{map[string]any{"function": map[string]any{"name": tool, "arguments": json.RawMessage(FakeToolInput)}}}
		}
		out := map[string]any{"model": req.Model, "created_at": now, "message": msg, "done": done}
		if done {
			out["done_reason"] = reason
			out["prompt_eval_count"] = estimateTokens(chars)
			out["eval_count"] = n
		}
		return out
	}
	if req.Stream != nil && !*req.Stream {
		var text string
		for i := range n {
			text += tokenText(i)
		}
		s.respond(w, r, sc.ttft+time.Duration(max(n-1, 0))*sc.itl, sc.fail, mustEncode(line(text, true, tool)))
		return
	}
	s.streamOllama(w, r, sc, n, tool, line)
}

func (s *Server) streamOllama(w http.ResponseWriter, r *http.Request, sc scenario, n int, tool string, line func(string, bool, string) map[string]any) {
	ctx := r.Context()
	if !s.wait(ctx, sc.ttft) {
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(v any) bool {
		if ctx.Err() != nil {
			s.markCancelled()
			return false
		}
		if _, err := w.Write(append(mustEncode(v), '\n')); err != nil || rc.Flush() != nil {
			s.markCancelled()
			return false
		}
		return true
	}
	for i := range n {
		if i > 0 && !s.wait(ctx, sc.itl) {
			return
		}
		if sc.fail == failMidstream && i == n/2 {
			send(map[string]string{"error": "an error was encountered while running the model"})
			return
		}
		if !send(line(tokenText(i), false, "")) {
			return
		}
	}
	if tool != "" && !send(line("", false, tool)) {
		return
	}
	if send(line("", true, "")) {
		s.markCompleted()
	}
}

package fakellm

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"
)

// KServe v2 mode: POST /v2/models/{name}/generate and generate_stream
// answer like Triton's generate extension. generate returns one object with
// the whole text_output; generate_stream sends one "data:" event per token
// and ends by closing the stream (no terminator event). Failures: "429",
// "500", "503" answer {"error": …}; "midstream" sends an error event after
// half of the tokens.

type kserveRequest struct {
	TextInput string `json:"text_input"`
	MaxTokens *int   `json:"max_tokens"`
}

// serveKServe answers the generate extension for model name; stream
// selects generate_stream.
func (s *Server) serveKServe(w http.ResponseWriter, r *http.Request, name string, stream bool) {
	s.countRequest()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.markCancelled()
		return
	}
	var req kserveRequest
	decodeErr := json.Unmarshal(body, &req)
	s.recordBody(name, len(body))
	w.Header().Set(HeaderReceivedModel, name)
	sc, err := parseScenario(r.Header, s.opts)
	switch {
	case err != nil:
		ollamaError(w, http.StatusBadRequest, err.Error())
		return
	case sc.fail == "429" || sc.fail == "500" || sc.fail == "503":
		ollamaError(w, map[string]int{"429": 429, "500": 500, "503": 503}[sc.fail], "injected failure "+sc.fail)
		return
	case decodeErr != nil || req.TextInput == "":
		ollamaError(w, http.StatusBadRequest, "failed to parse the request JSON buffer: text_input is required")
		return
	}
	n := sc.tokens
	if req.MaxTokens != nil && *req.MaxTokens < n {
		n = max(*req.MaxTokens, 0)
	}
	out := func(text string) map[string]string {
		return map[string]string{"model_name": name, "model_version": "1", "text_output": text}
	}
	if !stream {
		var text strings.Builder
		for i := range n {
			text.WriteString(tokenText(i))
		}
		s.respond(w, r, sc.ttft+time.Duration(max(n-1, 0))*sc.itl, sc.fail, mustEncode(out(text.String())))
		return
	}
	ctx := r.Context()
	if !s.wait(ctx, sc.ttft) {
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	for i := range n {
		if i > 0 && !s.wait(ctx, sc.itl) {
			return
		}
		var data []byte
		if sc.fail == failMidstream && i == n/2 {
			data = mustEncode(map[string]string{"error": "in ensemble '" + name + "', Executor failed"})
		} else {
			data = mustEncode(out(tokenText(i)))
		}
		if err := writeEvent(w, rc, data); err != nil || ctx.Err() != nil {
			s.markCancelled()
			return
		}
		if sc.fail == failMidstream && i == n/2 {
			return
		}
	}
	s.markCompleted()
}

// kservePath splits /v2/models/{name}/generate[_stream].
func kservePath(path string) (name string, stream, ok bool) {
	rest, found := strings.CutPrefix(path, "/v2/models/")
	if !found {
		return "", false, false
	}
	if name, ok = strings.CutSuffix(rest, "/generate_stream"); ok && name != "" {
		return name, true, true
	}
	if name, ok = strings.CutSuffix(rest, "/generate"); ok && name != "" {
		return name, false, true
	}
	return "", false, false
}

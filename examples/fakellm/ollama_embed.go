package fakellm

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"time"
	"unicode/utf8"
)

// Ollama mode, embeddings: POST /api/embed answers like Ollama's
// EmbedHandler. The request is {model, input, truncate, dimensions}: model
// must be a name ("" is 400 "invalid model name"), input a string or an
// array of strings (anything else is 400 "invalid input type"; an empty
// string, null or absent input embeds nothing: 200 with no embeddings).
// Each input gets Embed(input), the vector /v1/embeddings gives it,
// truncated to dimensions and renormalized when dimensions is smaller; an
// input longer than OllamaContextTokens is cut to it, or refused with 400
// "the input length exceeds the context length" under truncate: false.
// The answer is {model, embeddings, total_duration, load_duration,
// prompt_eval_count}, the count being estimateTokens of each input. The
// "429", "500" and "503" failures answer {"error": ...} with that status.

// OllamaContextTokens is the context length of the fake's embedding model.
const OllamaContextTokens = 512

type ollamaEmbedRequest struct {
	Model      string `json:"model"`
	Input      any    `json:"input"`
	Truncate   *bool  `json:"truncate"`
	Dimensions int    `json:"dimensions"`
}

type ollamaEmbedResponse struct {
	Model           string      `json:"model"`
	Embeddings      [][]float32 `json:"embeddings"`
	TotalDuration   int64       `json:"total_duration,omitempty"`
	LoadDuration    int64       `json:"load_duration,omitempty"`
	PromptEvalCount int         `json:"prompt_eval_count,omitempty"`
}

// serveOllamaEmbed answers POST /api/embed.
func (s *Server) serveOllamaEmbed(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.countRequest()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.markCancelled()
		return
	}
	var req ollamaEmbedRequest
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
	case len(body) == 0:
		ollamaError(w, http.StatusBadRequest, "missing request body")
		return
	case decodeErr != nil:
		ollamaError(w, http.StatusBadRequest, decodeErr.Error())
		return
	case req.Model == "":
		ollamaError(w, http.StatusBadRequest, "invalid model name")
		return
	}
	inputs, ok := ollamaEmbedInputs(req.Input)
	if !ok {
		ollamaError(w, http.StatusBadRequest, "invalid input type")
		return
	}
	out := ollamaEmbedResponse{Model: req.Model, Embeddings: [][]float32{}}
	for _, in := range inputs {
		n := estimateTokens(utf8.RuneCountInString(in))
		if n > OllamaContextTokens {
			if req.Truncate != nil && !*req.Truncate {
				ollamaError(w, http.StatusBadRequest, "the input length exceeds the context length")
				return
			}
			in, n = in[:4*OllamaContextTokens], OllamaContextTokens
		}
		out.Embeddings = append(out.Embeddings, shorten(Embed(in), req.Dimensions))
		out.PromptEvalCount += n
	}
	if len(inputs) > 0 {
		out.TotalDuration, out.LoadDuration = int64(time.Since(start))+1, 1
	}
	s.respond(w, r, sc.ttft, sc.fail, mustEncode(out))
}

// ollamaEmbedInputs reads Ollama's input: a string (empty: none), an array
// of strings, or null; ok is false for anything else.
func ollamaEmbedInputs(v any) ([]string, bool) {
	switch x := v.(type) {
	case nil:
		return nil, true
	case string:
		if x == "" {
			return nil, true
		}
		return []string{x}, true
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}

// shorten keeps the first dims values of a unit vector and renormalizes
// them, as Ollama does for dimensions; dims <= 0 or not smaller keeps vec.
func shorten(vec []float32, dims int) []float32 {
	if dims <= 0 || dims >= len(vec) {
		return vec
	}
	var sum float64
	for _, v := range vec[:dims] {
		sum += float64(v) * float64(v)
	}
	norm := math.Max(math.Sqrt(sum), 1e-12)
	out := make([]float32, dims)
	for i, v := range vec[:dims] {
		out[i] = float32(float64(v) / norm)
	}
	return out
}

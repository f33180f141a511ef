package fakellm

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
)

// OpenAI error types used in error bodies.
const (
	typeInvalidRequest = "invalid_request_error"
	typeServerError    = "server_error"
)

// apiError is the "error" member of an OpenAI error body. Param and Code
// are encoded as null when nil.
type apiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// errorBody is an OpenAI error body.
type errorBody struct {
	Error apiError `json:"error"`
}

// usage is the token accounting of a completion. Details is set only by
// the simulator (Sim), which reports prefix-cache hits as vLLM does.
type usage struct {
	PromptTokens     int            `json:"prompt_tokens"`
	CompletionTokens int            `json:"completion_tokens"`
	TotalTokens      int            `json:"total_tokens"`
	Details          *promptDetails `json:"prompt_tokens_details,omitempty"`
}

// promptDetails is usage.prompt_tokens_details.
type promptDetails struct {
	CachedTokens int `json:"cached_tokens"`
}

// raw returns the JSON encoding of u.
func (u usage) raw() json.RawMessage {
	if u.Details != nil {
		return fmt.Appendf(nil, `{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":%d}}`,
			u.PromptTokens, u.CompletionTokens, u.TotalTokens, u.Details.CachedTokens)
	}
	return fmt.Appendf(nil, `{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}`,
		u.PromptTokens, u.CompletionTokens, u.TotalTokens)
}

// nullJSON is the JSON null, used for "usage" in streamed chunks when the
// client asked for a usage chunk.
var nullJSON = json.RawMessage("null")

// chatCompletion is a "chat.completion" object.
type chatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   usage        `json:"usage"`
}

// chatChoice is a choice of a chat.completion object.
type chatChoice struct {
	Index        int              `json:"index"`
	Message      assistantMessage `json:"message"`
	Logprobs     any              `json:"logprobs"`
	FinishReason string           `json:"finish_reason"`
}

// assistantMessage is the generated message of a chatChoice.
type assistantMessage struct {
	Role      string     `json:"role"`
	Content   string     `json:"content"`
	ToolCalls []toolCall `json:"tool_calls,omitempty"`
}

// chatChunk is a "chat.completion.chunk" object. Usage is omitted when nil.
type chatChunk struct {
	ID      string            `json:"id"`
	Object  string            `json:"object"`
	Created int64             `json:"created"`
	Model   string            `json:"model"`
	Choices []chatChunkChoice `json:"choices"`
	Usage   json.RawMessage   `json:"usage,omitempty"`
}

// chatChunkChoice is a choice of a chat.completion.chunk object.
type chatChunkChoice struct {
	Index        int       `json:"index"`
	Delta        chatDelta `json:"delta"`
	Logprobs     any       `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

// chatDelta is the message fragment of a chatChunkChoice; unset fields are
// omitted, so the final chunk carries an empty delta.
type chatDelta struct {
	Role      string     `json:"role,omitempty"`
	Content   *string    `json:"content,omitempty"`
	ToolCalls []toolCall `json:"tool_calls,omitempty"`
}

// textCompletion is a "text_completion" object, streamed or not. Usage is
// omitted when nil.
type textCompletion struct {
	ID      string          `json:"id"`
	Object  string          `json:"object"`
	Created int64           `json:"created"`
	Model   string          `json:"model"`
	Choices []textChoice    `json:"choices"`
	Usage   json.RawMessage `json:"usage,omitempty"`
}

// textChoice is a choice of a text_completion object.
type textChoice struct {
	Text         string  `json:"text"`
	Index        int     `json:"index"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

// embeddingList is the response of POST /v1/embeddings.
type embeddingList struct {
	Object string         `json:"object"`
	Data   []embedding    `json:"data"`
	Model  string         `json:"model"`
	Usage  embeddingUsage `json:"usage"`
}

// embedding is one vector of an embeddingList; Embedding is a []float32 or,
// with encoding_format "base64", the base64 of its little-endian float32s.
type embedding struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"`
}

// embeddingUsage is the token accounting of an embeddings request.
type embeddingUsage struct {
	PromptTokens int `json:"prompt_tokens"`
	TotalTokens  int `json:"total_tokens"`
}

// modelList is the response of GET /v1/models.
type modelList struct {
	Object string  `json:"object"`
	Data   []model `json:"data"`
}

// model is a "model" object.
type model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// idAlphabet is the alphabet of generated object ids.
const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newID returns prefix followed by 24 random alphanumeric characters, the
// shape of OpenAI object ids such as "chatcmpl-…".
func newID(prefix string) string {
	b := make([]byte, len(prefix), len(prefix)+24)
	copy(b, prefix)
	for range 24 {
		b = append(b, idAlphabet[rand.IntN(len(idAlphabet))])
	}
	return string(b)
}

// mustEncode returns the JSON encoding of v, one of the response types of
// this package, which always encode.
func mustEncode(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("fakellm: cannot encode %T: %v", v, err))
	}
	return data
}

// writeBody writes a complete JSON response with the given status.
func writeBody(w http.ResponseWriter, status int, body []byte) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("cannot write response body: %w", err)
	}
	return nil
}

// writeJSON writes v as a JSON response. A client that went away is not
// reported: there is nobody left to answer.
func writeJSON(w http.ResponseWriter, status int, v any) {
	_ = writeBody(w, status, mustEncode(v))
}

// writeError writes an OpenAI error body with the given status.
func writeError(w http.ResponseWriter, status int, e apiError) {
	writeJSON(w, status, errorBody{Error: e})
}

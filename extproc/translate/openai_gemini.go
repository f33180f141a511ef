package translate

import (
	"encoding/json"
	"fmt"
	"math"
)

// chatToGemini translates an OpenAI Chat Completions client to a Google
// Gemini (Gemini API or Vertex AI) backend, as chatToBedrock does: the
// request goes through the Chat → Messages translation first (its checks
// and refusals included), and the answer comes back as Anthropic events
// (geminiStream), which the Messages → Chat stream translation turns into
// chunks.
type chatToGemini struct {
	inner   chatToMessages
	st      geminiStream
	scratch []byte // the Anthropic events of one chunk
}

var _ Translator = (*chatToGemini)(nil)

// noCap stands for "no max_tokens" in the intermediate Messages request:
// Gemini, unlike Anthropic, needs no output cap.
const noCap = math.MaxInt32

// chatGeminiIDPrefix begins the ids of chat completions made from Gemini
// answers.
const chatGeminiIDPrefix = "chatcmpl-gem-"

func newChatToGemini(opts Options) *chatToGemini {
	if opts.DefaultMaxTokens < 1 {
		opts.DefaultMaxTokens = noCap
	}
	return &chatToGemini{inner: chatToMessages{opts: opts, maxTemperature: 2}}
}

// Request builds the generateContent request.
func (t *chatToGemini) Request(body []byte) (Request, error) {
	r, err := t.inner.Request(body)
	if err != nil {
		return Request{}, renameBackendTo(err, geminiName)
	}
	var an anRequest
	if err := json.Unmarshal(r.Body, &an); err != nil {
		return Request{}, fmt.Errorf("cannot decode the intermediate Messages request: %w", err)
	}
	maxTokens := an.MaxTokens
	if maxTokens == noCap {
		maxTokens = 0
	}
	t.st = newGeminiStream(t.inner.opts, chatGeminiIDPrefix)
	return geminiRequest(an, t.inner.opts.Model, maxTokens)
}

// Response translates a generateContent answer or a Google error into a
// chat.completion or OpenAI error.
func (t *chatToGemini) Response(status int, body []byte) (int, []byte) {
	status, body = geminiResponse(status, body, t.inner.opts, chatGeminiIDPrefix)
	return t.inner.Response(status, body)
}

// Stream translates streamGenerateContent events into chat.completion.chunk
// events ending in [DONE].
func (t *chatToGemini) Stream(dst, chunk []byte, end bool) []byte {
	t.scratch = t.st.translate(t.scratch[:0], chunk, end)
	return t.inner.Stream(dst, t.scratch, end)
}

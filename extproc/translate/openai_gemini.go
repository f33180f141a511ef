package translate

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
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
	chat, body, err := geminiChatOnly(body)
	if err != nil {
		return Request{}, err
	}
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
	return geminiRequest(an, t.inner.opts.Model, maxTokens, chat)
}

// geminiChatOnly takes the Chat Completions fields Gemini serves but
// Anthropic does not (response_format, presence_penalty,
// frequency_penalty, seed) out of body, for the generationConfig.
func geminiChatOnly(body []byte) (gmChatOnly, []byte, error) {
	var out gmChatOnly
	if !gjson.ValidBytes(body) {
		return out, body, nil // the Messages translation refuses it
	}
	var in struct {
		ResponseFormat *struct {
			Type       string `json:"type"`
			JSONSchema *struct {
				Schema json.RawMessage `json:"schema"`
			} `json:"json_schema"`
		} `json:"response_format"`
		PresencePenalty  *float64 `json:"presence_penalty"`
		FrequencyPenalty *float64 `json:"frequency_penalty"`
		Seed             *int64   `json:"seed"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return out, nil, invalid("The request body does not match the Chat Completions schema: %s", jsonProblem(err))
	}
	out.PresencePenalty, out.FrequencyPenalty, out.Seed = in.PresencePenalty, in.FrequencyPenalty, in.Seed
	if rf := in.ResponseFormat; rf != nil {
		switch rf.Type {
		case "text":
		case "json_object":
			out.ResponseMimeType = "application/json"
		case "json_schema":
			if rf.JSONSchema == nil || len(rf.JSONSchema.Schema) == 0 {
				return out, nil, invalid("response_format.json_schema.schema is required.")
			}
			out.ResponseMimeType, out.ResponseJSONSchema = "application/json", rf.JSONSchema.Schema
		default:
			return out, nil, invalid("response_format.type must be text, json_object or json_schema.")
		}
	}
	var err error
	for _, k := range []string{"response_format", "presence_penalty", "frequency_penalty", "seed"} {
		if body, err = sjson.DeleteBytes(body, k); err != nil {
			return out, nil, invalid("The request body must be a JSON object.")
		}
	}
	return out, body, nil
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

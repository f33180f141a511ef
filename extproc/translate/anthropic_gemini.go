package translate

import "encoding/json"

// messagesToGemini translates an Anthropic Messages client to a Google
// Gemini backend; the stream half is geminiStream.
type messagesToGemini struct {
	opts Options
	st   geminiStream
}

var _ Translator = (*messagesToGemini)(nil)

const msgGeminiIDPrefix = "msg_gem_"

// Request builds the generateContent request; Anthropic features Gemini
// cannot express (server tools, documents, URL images, ...) are refused
// with an ErrUnsupported RequestError naming the field.
func (t *messagesToGemini) Request(body []byte) (Request, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return Request{}, invalid("The request body must be a JSON object: %s", jsonProblem(err))
	}
	for k, v := range fields {
		if !messagesFieldsMapped[k] && string(v) != "null" {
			return Request{}, unsupported("The field %q is not supported by this model's backend (%s).", k, geminiName)
		}
	}
	var in anRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return Request{}, invalid("The request body does not match the Messages schema: %s", jsonProblem(err))
	}
	if _, ok := fields["max_tokens"]; !ok || in.MaxTokens < 1 {
		return Request{}, invalid("max_tokens: Field required (a positive integer).")
	}
	t.st = newGeminiStream(t.opts, msgGeminiIDPrefix)
	return geminiRequest(in, t.opts.Model, in.MaxTokens, gmChatOnly{})
}

// Response translates a generateContent answer or Google error into an
// Anthropic message or error.
func (t *messagesToGemini) Response(status int, body []byte) (int, []byte) {
	return geminiResponse(status, body, t.opts, msgGeminiIDPrefix)
}

// Stream translates streamGenerateContent events into Anthropic events.
func (t *messagesToGemini) Stream(dst, chunk []byte, end bool) []byte {
	return t.st.translate(dst, chunk, end)
}

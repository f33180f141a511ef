package translate

import "encoding/json"

// messagesToBedrock translates an Anthropic Messages client to an AWS
// Bedrock Converse backend; the stream half is bedrockStream.
type messagesToBedrock struct {
	opts Options
	st   bedrockStream
}

var _ Translator = (*messagesToBedrock)(nil)

// Request builds the Converse request; Anthropic features Converse cannot
// express (server tools, documents, URL images, ...) are refused with an
// ErrUnsupported RequestError naming the field.
func (t *messagesToBedrock) Request(body []byte) (Request, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return Request{}, invalid("The request body must be a JSON object: %s", jsonProblem(err))
	}
	for k, v := range fields {
		if !messagesFieldsMapped[k] && string(v) != "null" {
			return Request{}, unsupported("The field %q is not supported by this model's backend (%s).", k, bedrockName)
		}
	}
	var in anRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return Request{}, invalid("The request body does not match the Messages schema: %s", jsonProblem(err))
	}
	if _, ok := fields["max_tokens"]; !ok || in.MaxTokens < 1 {
		return Request{}, invalid("max_tokens: Field required (a positive integer).")
	}
	t.st = newBedrockStream(t.opts, "msg_bdrk_")
	return bedrockRequest(in, t.opts.Model)
}

// Response translates a Converse answer or error into an Anthropic message
// or error.
func (t *messagesToBedrock) Response(status int, body []byte) (int, []byte) {
	return bedrockResponse(status, body, t.opts, "msg_bdrk_")
}

// Stream translates ConverseStream frames into Anthropic events.
func (t *messagesToBedrock) Stream(dst, chunk []byte, end bool) []byte {
	return t.st.translate(dst, chunk, end)
}

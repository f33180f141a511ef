package translate

import (
	"encoding/json"
	"fmt"
)

// chatToBedrock translates an OpenAI Chat Completions client to an AWS
// Bedrock Converse backend. Converse mirrors Anthropic Messages, so the
// request goes through the Chat → Messages translation first (its checks
// and refusals included), and the answer comes back through Anthropic
// events: Converse events become Anthropic events (bedrockStream), which
// the Messages → Chat stream translation turns into chunks.
type chatToBedrock struct {
	inner   chatToMessages
	st      bedrockStream
	scratch []byte // the Anthropic events of one chunk
}

var _ Translator = (*chatToBedrock)(nil)

// chatIDPrefix begins the ids of chat completions made from Bedrock
// answers, which carry none.
const chatIDPrefix = "chatcmpl-bdrk-"

// Request builds the Converse request.
func (t *chatToBedrock) Request(body []byte) (Request, error) {
	r, err := t.inner.Request(body)
	if err != nil {
		return Request{}, renameBackend(err)
	}
	var an anRequest
	if err := json.Unmarshal(r.Body, &an); err != nil {
		return Request{}, fmt.Errorf("cannot decode the intermediate Messages request: %w", err)
	}
	t.st = newBedrockStream(t.inner.opts, chatIDPrefix)
	return bedrockRequest(an, t.inner.opts.Model)
}

// Response translates a Converse answer or error into a chat.completion
// or OpenAI error.
func (t *chatToBedrock) Response(status int, body []byte) (int, []byte) {
	status, body = bedrockResponse(status, body, t.inner.opts, chatIDPrefix)
	return t.inner.Response(status, body)
}

// Stream translates ConverseStream frames into chat.completion.chunk
// events ending in [DONE].
func (t *chatToBedrock) Stream(dst, chunk []byte, end bool) []byte {
	t.scratch = t.st.translate(t.scratch[:0], chunk, end)
	return t.inner.Stream(dst, t.scratch, end)
}

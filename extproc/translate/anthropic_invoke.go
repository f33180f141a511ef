package translate

import (
	"encoding/base64"
	"encoding/json"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/aws/smithy-go/encoding/httpbinding"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// Claude on Bedrock's InvokeModel API (Options.BedrockInvoke): the body is
// Anthropic's Messages request without model and stream, with
// anthropic_version bedrock-2023-05-31; the answer is Anthropic's message
// as is, and InvokeModelWithResponseStream sends each Anthropic event as
// the base64 "bytes" of an event-stream "chunk" frame.

// bedrockAnthropicVersion is the anthropic_version InvokeModel takes for
// Claude models.
const bedrockAnthropicVersion = "bedrock-2023-05-31"

// invokePath is the InvokeModel path of model, the id escaped as one
// segment as the signature covers it.
func invokePath(model string, stream bool) string {
	op := "/invoke"
	if stream {
		op = "/invoke-with-response-stream"
	}
	return "/model/" + httpbinding.EscapePath(model, true) + op
}

// messagesToInvoke translates an Anthropic Messages client to Claude on
// Bedrock's InvokeModel API: the same Messages body and events, another
// envelope.
type messagesToInvoke struct {
	opts Options
	st   bedrockStream
}

var _ Translator = (*messagesToInvoke)(nil)

// Request moves the model into the path and the stream flag into the
// operation, and sets anthropic_version; every other field goes as the
// client sent it (Bedrock answers what Claude on Bedrock cannot take).
func (t *messagesToInvoke) Request(body []byte) (Request, error) {
	out, stream, err := claudeEnvelope(body, bedrockAnthropicVersion, t.opts.DefaultMaxTokens, "model", "stream")
	if err != nil {
		return Request{}, err
	}
	t.st = bedrockStream{dec: eventstream.NewDecoder(), invoke: true}
	return Request{Body: out, Path: invokePath(t.opts.Model, stream), Headers: [][2]string{{"content-type", "application/json"}}, Stream: stream}, nil
}

// claudeEnvelope puts a Messages body in the envelope a cloud's Claude
// endpoint takes (Bedrock's InvokeModel, Vertex's rawPredict): the cloud's
// anthropic_version in the body, max_tokens defaulted, the fields the path
// carries instead (drop) removed. It returns whether the client streams.
func claudeEnvelope(body []byte, version string, defaultMaxTokens int, drop ...string) ([]byte, bool, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, false, invalid("The request body must be a JSON object: %s", jsonProblem(err))
	}
	out, err := sjson.SetBytes(body, "anthropic_version", version)
	if err != nil {
		return nil, false, invalid("The request body cannot be rewritten: %v", err)
	}
	if _, ok := fields["max_tokens"]; !ok {
		if defaultMaxTokens < 1 {
			return nil, false, invalid("max_tokens: Field required (a positive integer).")
		}
		out, _ = sjson.SetBytes(out, "max_tokens", defaultMaxTokens)
	}
	for _, k := range drop {
		if out, err = sjson.DeleteBytes(out, k); err != nil {
			return nil, false, invalid("The request body cannot be rewritten: %v", err)
		}
	}
	return out, string(fields["stream"]) == "true", nil
}

// Response passes Claude's message on and maps Bedrock's errors.
func (t *messagesToInvoke) Response(status int, body []byte) (int, []byte) {
	if status >= http.StatusBadRequest {
		return bedrockError(status, body)
	}
	return claudeMessage(status, body)
}

// claudeMessage passes on Claude's message as a cloud's Claude endpoint
// answered it (Bedrock's InvokeModel, Vertex's rawPredict), or a 502 for a
// body that is not a Messages answer: gjson alone would read a truncated
// `{"content"[` as holding an array, so the body must be valid JSON too.
func claudeMessage(status int, body []byte) (int, []byte) {
	if !gjson.ValidBytes(body) || !gjson.GetBytes(body, "content").IsArray() {
		return http.StatusBadGateway, AnthropicErrorOfType("api_error", "The model backend returned a response the gateway cannot translate.")
	}
	return status, body
}

// Stream turns chunk frames into the Anthropic events they carry.
func (t *messagesToInvoke) Stream(dst, chunk []byte, end bool) []byte {
	return t.st.translate(dst, chunk, end)
}

// invokeChunk handles one InvokeModelWithResponseStream frame: a chunk
// carrying one Anthropic event (passed on as its SSE event), or an
// exception. The stream is complete at message_stop.
func (s *bedrockStream) invokeChunk(dst []byte, m eventstream.Message) []byte {
	if out, failed := s.exception(dst, m); failed {
		return out
	}
	if headerString(m, ":event-type") != "chunk" {
		return dst
	}
	b64 := gjson.GetBytes(m.Payload, "bytes").Str
	if n := base64.StdEncoding.DecodedLen(len(b64)); cap(s.event) < n {
		s.event = make([]byte, n)
	}
	n, err := base64.StdEncoding.Decode(s.event[:cap(s.event)], []byte(b64))
	ev := s.event[:max(n, 0)]
	if err != nil || !gjson.ValidBytes(ev) {
		return s.fail(dst, "api_error", "The model backend sent a chunk that is not an event.")
	}
	typ := gjson.GetBytes(ev, "type").Str
	if typ == "" {
		return s.fail(dst, "api_error", "The model backend sent an event without a type.")
	}
	dst = append(dst, "event: "...)
	dst = append(dst, typ...)
	dst = append(dst, "\ndata: "...)
	dst = append(dst, ev...)
	dst = append(dst, "\n\n"...)
	switch typ {
	case "message_stop", "error":
		s.done, s.stopped = true, true
	}
	return dst
}

// chatToInvoke translates an OpenAI Chat Completions client to Claude on
// Bedrock's InvokeModel API: Chat → Messages (its checks and refusals
// included), then the InvokeModel envelope; the answer comes back the
// same way.
type chatToInvoke struct {
	inner   chatToMessages
	inv     messagesToInvoke
	scratch []byte // the Anthropic events of one chunk
}

var _ Translator = (*chatToInvoke)(nil)

// Request builds the InvokeModel request.
func (t *chatToInvoke) Request(body []byte) (Request, error) {
	r, err := t.inner.Request(body)
	if err != nil {
		return Request{}, renameBackend(err)
	}
	return t.inv.Request(r.Body)
}

// Response translates Claude's message or Bedrock's error into a
// chat.completion or OpenAI error.
func (t *chatToInvoke) Response(status int, body []byte) (int, []byte) {
	status, body = t.inv.Response(status, body)
	return t.inner.Response(status, body)
}

// Stream translates chunk frames into chat.completion.chunk events.
func (t *chatToInvoke) Stream(dst, chunk []byte, end bool) []byte {
	t.scratch = t.inv.Stream(t.scratch[:0], chunk, end)
	return t.inner.Stream(dst, t.scratch, end)
}

package translate

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/tidwall/gjson"
)

// Claude on Vertex AI (ProtocolAnthropicVertex): Anthropic's Messages API
// under Vertex's publisher model paths,
// /v1/projects/{project}/locations/{location}/publishers/anthropic/models/
// {model}:rawPredict (whole) or :streamRawPredict (stream). The body is the
// Messages request without model (the path names it) and with
// anthropic_version vertex-2023-10-16 in the body instead of the header;
// stream stays in the body. The answer is Anthropic's message, the stream
// Anthropic's own SSE events, both as is; errors are Anthropic's or, from
// Vertex's front end (token, quota, unknown model), Google's.

// vertexAnthropicVersion is the anthropic_version Claude on Vertex AI
// takes.
const vertexAnthropicVersion = "vertex-2023-10-16"

// vertexAnthropicName names the backend in refusals.
const vertexAnthropicName = "Claude on Vertex AI"

// vertexAnthropicPrefix starts the paths the translators make; VertexPath
// puts the project and location before it.
const vertexAnthropicPrefix = "/publishers/anthropic/models/"

// vertexAnthropicPath is the path, before VertexPath, of model's method.
func vertexAnthropicPath(model string, stream bool) string {
	method := ":rawPredict"
	if stream {
		method = ":streamRawPredict"
	}
	return vertexAnthropicPrefix + url.PathEscape(model) + method
}

// VertexPath maps a path a translation to Vertex AI made (the Gemini API
// path of GeminiPath, or Claude's publisher path) to the Vertex AI path of
// the same method for project and location.
func VertexPath(path, project, location string) string {
	base := "/v1/projects/" + url.PathEscape(project) + "/locations/" + url.PathEscape(location)
	if strings.HasPrefix(path, vertexAnthropicPrefix) {
		return base + path
	}
	rest, _ := strings.CutPrefix(path, "/v1beta/models/")
	return base + "/publishers/google/models/" + rest
}

// messagesToVertex translates an Anthropic Messages client to Claude on
// Vertex AI: the same body and events, another envelope.
type messagesToVertex struct {
	opts Options
}

var _ Translator = (*messagesToVertex)(nil)

// Request moves the model into the path and sets anthropic_version; every
// other field goes as the client sent it (Vertex answers what Claude on
// Vertex cannot take).
func (t *messagesToVertex) Request(body []byte) (Request, error) {
	out, stream, err := claudeEnvelope(body, vertexAnthropicVersion, t.opts.DefaultMaxTokens, "model")
	if err != nil {
		return Request{}, err
	}
	return Request{Body: out, Path: vertexAnthropicPath(t.opts.Model, stream), Headers: [][2]string{{"content-type", "application/json"}}, Stream: stream}, nil
}

// Response passes Claude's message on and maps Vertex's errors.
func (t *messagesToVertex) Response(status int, body []byte) (int, []byte) {
	if status >= http.StatusBadRequest {
		return vertexAnthropicError(status, body)
	}
	return claudeMessage(status, body)
}

// Stream passes Claude's events on as they come.
func (t *messagesToVertex) Stream(dst, chunk []byte, _ bool) []byte {
	return append(dst, chunk...)
}

// vertexAnthropicError maps an error of Claude on Vertex AI to an
// Anthropic error: Claude's own pass as they are, Google's ({"error":
// {"code","message","status"}}) by their status. A 401 or 403 (the token
// or the project's permission) is the gateway's configuration, not the
// client's: a 502 saying so.
func vertexAnthropicError(status int, body []byte) (int, []byte) {
	anthropic := gjson.GetBytes(body, "type").Str == "error" && gjson.GetBytes(body, "error.type").Str != ""
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		msg := gjson.GetBytes(body, "error.message").Str
		if msg == "" {
			msg = http.StatusText(status)
		}
		return http.StatusBadGateway, AnthropicErrorOfType("api_error", "The model backend ("+vertexAnthropicName+") refused the gateway's credentials: "+msg)
	}
	if anthropic {
		return status, body
	}
	e := gjson.GetBytes(body, "error")
	if e.IsArray() { // some Google front ends wrap the error in an array
		e = e.Get("0.error")
	}
	msg := e.Get("message").Str
	if msg == "" {
		msg = http.StatusText(status)
	}
	typ := geminiStatusType(e.Get("status").Str)
	if typ == "" {
		typ = anthropicErrorType(status)
	}
	return status, AnthropicErrorOfType(typ, msg)
}

// chatToVertex translates an OpenAI Chat Completions client to Claude on
// Vertex AI: Chat → Messages (its checks and refusals included), then the
// Vertex envelope; the answer comes back the same way.
type chatToVertex struct {
	inner chatToMessages
	vx    messagesToVertex
}

var _ Translator = (*chatToVertex)(nil)

// Request builds the rawPredict request.
func (t *chatToVertex) Request(body []byte) (Request, error) {
	r, err := t.inner.Request(body)
	if err != nil {
		return Request{}, renameBackendTo(err, vertexAnthropicName)
	}
	return t.vx.Request(r.Body)
}

// Response translates Claude's message or Vertex's error into a
// chat.completion or OpenAI error.
func (t *chatToVertex) Response(status int, body []byte) (int, []byte) {
	status, body = t.vx.Response(status, body)
	return t.inner.Response(status, body)
}

// Stream translates Claude's events into chat.completion.chunk events.
func (t *chatToVertex) Stream(dst, chunk []byte, end bool) []byte {
	return t.inner.Stream(dst, chunk, end)
}

package translate

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/streamgate/streamgate/extproc/sse"
)

// completionsToKServe translates an OpenAI Completions client to a KServe
// v2 (Triton) backend's generate extension: POST
// /v2/models/{model}/generate, or generate_stream for streams, whose events
// each carry a piece of text_output. Chat requests are not translated: the
// generate extension takes raw text, and only the model's own chat template
// could turn messages into it. KServe reports neither a finish reason nor
// token counts: answers finish with "stop" and carry no usage.
type completionsToKServe struct {
	opts   Options
	stream bool
	st     kserveStream
}

var _ Translator = (*completionsToKServe)(nil)

type ksRequest struct {
	TextInput   string   `json:"text_input"`
	MaxTokens   *int     `json:"max_tokens,omitempty"`
	Temperature *float64 `json:"temperature,omitempty"`
	TopP        *float64 `json:"top_p,omitempty"`
	StopWords   []string `json:"stop_words,omitempty"`
	Seed        *int     `json:"random_seed,omitempty"`
	Stream      bool     `json:"stream"`
}

// kserveFields are the Completions fields the translation maps or drops.
var kserveFields = map[string]bool{
	"model": true, "prompt": true, "max_tokens": true, "temperature": true, "top_p": true, "stop": true,
	"stream": true, "stream_options": true, "seed": true, "user": true,
}

// Request builds the generate request.
func (t *completionsToKServe) Request(body []byte) (Request, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return Request{}, invalid("The request body must be a JSON object: %s", jsonProblem(err))
	}
	for k, v := range fields {
		neutral := string(v) == "null" || (k == "n" && string(v) == "1") || (k == "echo" && string(v) == "false") ||
			(k == "best_of" && string(v) == "1")
		if !kserveFields[k] && !neutral {
			return Request{}, unsupported("The field %q is not supported by this model's backend (KServe v2 generate).", k)
		}
	}
	var in struct {
		Prompt      json.RawMessage `json:"prompt"`
		MaxTokens   *int            `json:"max_tokens"`
		Temperature *float64        `json:"temperature"`
		TopP        *float64        `json:"top_p"`
		Stop        json.RawMessage `json:"stop"`
		Stream      bool            `json:"stream"`
		Seed        *int            `json:"seed"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return Request{}, invalid("The request body does not match the Completions schema: %s", jsonProblem(err))
	}
	out := ksRequest{MaxTokens: in.MaxTokens, Temperature: in.Temperature, TopP: in.TopP, Seed: in.Seed, Stream: in.Stream}
	if json.Unmarshal(in.Prompt, &out.TextInput) != nil {
		var many []string
		if json.Unmarshal(in.Prompt, &many) != nil || len(many) != 1 {
			return Request{}, unsupported("prompt must be one string for this model's backend (KServe v2 generate): token arrays and batches are not supported.")
		}
		out.TextInput = many[0]
	}
	var err error
	if out.StopWords, err = stopSequences(in.Stop); err != nil {
		return Request{}, err
	}
	t.stream = in.Stream
	b, err := json.Marshal(out)
	if err != nil {
		return Request{}, fmt.Errorf("cannot encode KServe request: %w", err)
	}
	path := "/v2/models/" + url.PathEscape(t.opts.Model) + "/generate"
	if in.Stream {
		path += "_stream"
	}
	return Request{Body: b, Path: path, Stream: in.Stream}, nil
}

type textCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []textChoice `json:"choices"`
}

type textChoice struct {
	Text         string          `json:"text"`
	Index        int             `json:"index"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

func (t *completionsToKServe) id() string {
	return "cmpl-kserve-" + strconv.FormatInt(t.opts.now().UnixNano(), 36)
}

// Response translates a generate answer or error.
func (t *completionsToKServe) Response(status int, body []byte) (int, []byte) {
	if status >= http.StatusBadRequest {
		msg := gjson.GetBytes(body, "error").Str
		if msg == "" {
			msg = http.StatusText(status)
		}
		typ := "invalid_request_error"
		if status >= 500 {
			typ = "server_error"
		}
		return status, openAIError(msg, typ, strconv.Itoa(status))
	}
	out := gjson.GetBytes(body, "text_output")
	if !gjson.ValidBytes(body) || out.Type != gjson.String {
		return http.StatusBadGateway, openAIError("The model backend returned a response the gateway cannot translate.", "server_error", "bad_backend_response")
	}
	stop := "stop"
	b, _ := json.Marshal(textCompletion{ID: t.id(), Object: "text_completion", Created: t.opts.now().Unix(),
		Model: gjson.GetBytes(body, "model_name").Str, Choices: []textChoice{{Text: out.Str, Logprobs: json.RawMessage("null"), FinishReason: &stop}}})
	return status, b
}

// kserveStream is the per-stream state of a generate_stream translation.
type kserveStream struct {
	dec    sse.Decoder
	prefix []byte
	done   bool
}

// Stream translates generate_stream events into text_completion chunks.
// The backend ends its stream by closing it, so the final chunk and
// [DONE] are written at the end of the body.
func (t *completionsToKServe) Stream(dst, chunk []byte, end bool) []byte {
	s := &t.st
	if s.done {
		return dst
	}
	s.dec.Feed(chunk)
	if end {
		s.dec.Close()
	}
	for !s.done {
		ev, ok, err := s.dec.Next()
		if err != nil {
			return s.fail(dst, "The model backend sent an event the gateway cannot frame.")
		}
		if !ok {
			break
		}
		dst = s.event(dst, ev.Data, t)
	}
	if end && !s.done {
		if s.prefix == nil {
			return s.fail(dst, "The model backend ended the stream without output.")
		}
		s.done = true
		dst = s.chunk(dst, `""`, `"stop"`)
		return append(dst, "data: [DONE]\n\n"...)
	}
	return dst
}

func (s *kserveStream) event(dst, data []byte, t *completionsToKServe) []byte {
	if !gjson.ValidBytes(data) {
		return s.fail(dst, "The model backend sent an event that is not JSON.")
	}
	if e := gjson.GetBytes(data, "error"); e.Exists() {
		msg := e.Str
		if msg == "" {
			msg = "The model backend failed while streaming."
		}
		return s.fail(dst, msg)
	}
	if s.prefix == nil {
		id, _ := json.Marshal(t.id())
		s.prefix = append(s.prefix, `{"id":`...)
		s.prefix = append(s.prefix, id...)
		s.prefix = append(s.prefix, `,"object":"text_completion","created":`...)
		s.prefix = strconv.AppendInt(s.prefix, t.opts.now().Unix(), 10)
		s.prefix = append(s.prefix, `,"model":`...)
		s.prefix = append(s.prefix, rawString(gjson.GetBytes(data, "model_name"))...)
		s.prefix = append(s.prefix, `,"choices":[`...)
	}
	if out := gjson.GetBytes(data, "text_output"); out.Type == gjson.String && out.Str != "" {
		dst = s.chunk(dst, out.Raw, "null")
	}
	return dst
}

func (s *kserveStream) chunk(dst []byte, text, finish string) []byte {
	dst = append(dst, "data: "...)
	dst = append(dst, s.prefix...)
	dst = append(dst, `{"text":`...)
	dst = append(dst, text...)
	dst = append(dst, `,"index":0,"logprobs":null,"finish_reason":`...)
	dst = append(dst, finish...)
	return append(dst, "}]}\n\n"...)
}

func (s *kserveStream) fail(dst []byte, msg string) []byte {
	s.done = true
	return appendErrorEvent(dst, msg, "server_error", "backend_error")
}

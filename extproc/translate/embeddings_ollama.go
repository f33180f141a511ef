package translate

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/tidwall/gjson"
)

// embeddingsToOllama translates an OpenAI Embeddings client (POST
// /v1/embeddings) to an Ollama backend (POST /api/embed): {model, input,
// dimensions} becomes {model, input, truncate: false, dimensions}, and
// Ollama's {model, embeddings: [[...]], prompt_eval_count} the OpenAI list
// object ({object: "list", data: [{object: "embedding", index,
// embedding}], model, usage}), each vector as floats or, with
// encoding_format "base64", the base64 of its little-endian float32s.
// Ollama embeds text only: token-id input is refused.
type embeddingsToOllama struct {
	opts   Options
	base64 bool
}

var _ Translator = (*embeddingsToOllama)(nil)

type olEmbedRequest struct {
	Model      string          `json:"model"`
	Input      json.RawMessage `json:"input"`
	Truncate   bool            `json:"truncate"`
	Dimensions int             `json:"dimensions,omitempty"`
}

// ollamaEmbedFields are the OpenAI embeddings fields the translation reads
// or may drop (user: Ollama keeps no end-user ids).
var ollamaEmbedFields = map[string]bool{"model": true, "input": true, "encoding_format": true, "dimensions": true, "user": true}

// Request builds the Ollama /api/embed request. truncate is false: OpenAI
// refuses an input longer than the model's context rather than embedding a
// part of it, and Ollama truncates unless told not to.
func (t *embeddingsToOllama) Request(body []byte) (Request, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return Request{}, invalid("The request body must be a JSON object: %s", jsonProblem(err))
	}
	for k, v := range fields {
		if !ollamaEmbedFields[k] && string(v) != "null" {
			return Request{}, unsupported("The field %q is not supported by this model's backend (Ollama).", k)
		}
	}
	out := olEmbedRequest{Model: t.opts.Model}
	var err error
	if out.Input, err = ollamaEmbedInput(fields["input"]); err != nil {
		return Request{}, err
	}
	if f := fields["encoding_format"]; len(f) > 0 && string(f) != "null" {
		switch string(f) {
		case `"float"`:
		case `"base64"`:
			t.base64 = true
		default:
			return Request{}, invalid("Invalid 'encoding_format': use \"float\" or \"base64\".")
		}
	}
	if d := fields["dimensions"]; len(d) > 0 && string(d) != "null" {
		if err := json.Unmarshal(d, &out.Dimensions); err != nil || out.Dimensions < 1 {
			return Request{}, invalid("Invalid 'dimensions': use a positive integer.")
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return Request{}, fmt.Errorf("cannot encode Ollama embed request: %w", err)
	}
	return Request{Body: b, Path: "/api/embed"}, nil
}

// ollamaEmbedInput returns the input Ollama takes, a string or an array of
// strings, from an OpenAI input; token ids are refused.
func ollamaEmbedInput(raw json.RawMessage) (json.RawMessage, error) {
	v := gjson.ParseBytes(raw)
	switch {
	case len(raw) == 0 || v.Type == gjson.Null:
		return nil, invalid("You must provide an input: the 'input' field is required.")
	case v.Type == gjson.String:
		return raw, nil
	case !v.IsArray():
		return nil, invalid("Invalid 'input': send a string or an array of strings.")
	}
	var err error
	v.ForEach(func(_, x gjson.Result) bool {
		switch {
		case x.Type == gjson.Number || x.IsArray():
			err = unsupported("Invalid 'input': token ids are not supported by this model's backend (Ollama embeds text only); send strings.")
		case x.Type != gjson.String:
			err = invalid("Invalid 'input': send a string or an array of strings.")
		}
		return err == nil
	})
	return raw, err
}

// Response translates an Ollama /api/embed answer or error into OpenAI's
// shape. The model is the public name the client asked for; the usage is
// Ollama's prompt_eval_count. Float vectors keep Ollama's digits as sent.
func (t *embeddingsToOllama) Response(status int, body []byte) (int, []byte) {
	if status >= http.StatusBadRequest {
		return ollamaErrorResponse(status, body)
	}
	bad := func() (int, []byte) {
		return http.StatusBadGateway, openAIError("The model backend returned a response the gateway cannot translate.", "server_error", "bad_backend_response")
	}
	if !gjson.ValidBytes(body) {
		return bad()
	}
	root := gjson.ParseBytes(body)
	embs := root.Get("embeddings")
	if !embs.IsArray() {
		return bad()
	}
	out := make([]byte, 0, len(body)+128)
	out = append(out, `{"object":"list","data":[`...)
	i, ok := 0, true
	var scratch []byte
	embs.ForEach(func(_, v gjson.Result) bool {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"object":"embedding","index":`...)
		out = strconv.AppendInt(out, int64(i), 10)
		out = append(out, `,"embedding":`...)
		if t.base64 {
			out, scratch, ok = appendBase64Vector(out, scratch, v)
		} else {
			out, ok = appendFloatVector(out, v)
		}
		out = append(out, '}')
		i++
		return ok
	})
	if !ok {
		return bad()
	}
	model, _ := json.Marshal(t.opts.PublicModel)
	n := root.Get("prompt_eval_count").Int()
	out = append(append(append(out, `],"model":`...), model...), `,"usage":{"prompt_tokens":`...)
	out = strconv.AppendInt(out, n, 10)
	out = append(out, `,"total_tokens":`...)
	out = strconv.AppendInt(out, n, 10)
	return status, append(out, "}}"...)
}

// appendFloatVector appends v, a JSON array of numbers, as is.
func appendFloatVector(dst []byte, v gjson.Result) ([]byte, bool) {
	dst = append(dst, '[')
	k := 0
	ok := eachNumber(v, func(num string) {
		if k > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, num...)
		k++
	})
	return append(dst, ']'), ok
}

// appendBase64Vector appends v, a JSON array of numbers, as the JSON string
// of the base64 of its little-endian float32s (OpenAI's "base64" encoding);
// scratch is reused for the bytes.
func appendBase64Vector(dst, scratch []byte, v gjson.Result) ([]byte, []byte, bool) {
	scratch = scratch[:0]
	ok := eachNumber(v, func(num string) {
		f, err := strconv.ParseFloat(num, 32)
		if err != nil {
			f = math.NaN() // out of float32 range: refused below
		}
		scratch = binary.LittleEndian.AppendUint32(scratch, math.Float32bits(float32(f)))
	})
	for i := 0; ok && i+4 <= len(scratch); i += 4 {
		f := math.Float32frombits(binary.LittleEndian.Uint32(scratch[i:]))
		ok = !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0)
	}
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, scratch)
	return append(dst, '"'), scratch, ok
}

// eachNumber calls fn with the text of each element of v, an array of
// JSON numbers in a document gjson.ValidBytes accepted, and reports whether
// v was such an array. It scans the raw bytes: gjson's ForEach would parse
// every number into a float64 that the float encoding never needs.
func eachNumber(v gjson.Result, fn func(num string)) bool {
	raw := v.Raw
	if !v.IsArray() || len(raw) < 2 {
		return false
	}
	i, end := 1, len(raw)-1 // inside the brackets
	for {
		for i < end && isJSONSpace(raw[i]) {
			i++
		}
		if i == end {
			return true // [] or a trailing element consumed
		}
		j := i
		for j < end && raw[j] != ',' && !isJSONSpace(raw[j]) {
			j++
		}
		if c := raw[i]; c != '-' && (c < '0' || c > '9') {
			return false // a string, array, object, true, false or null
		}
		fn(raw[i:j])
		for j < end && isJSONSpace(raw[j]) {
			j++
		}
		if j < end { // the comma
			j++
		}
		i = j
	}
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// Stream is never called: embeddings are not streamed.
func (t *embeddingsToOllama) Stream(dst, _ []byte, _ bool) []byte { return dst }

package fakellm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Values of HeaderFail.
const (
	failDisconnect = "disconnect"
	failMidstream  = "midstream"
	// failHang never answers: no status, no byte, until the client goes.
	failHang = "hang"
	// failStall streams half of the tokens, then sends nothing more and
	// keeps the connection open until the client goes.
	failStall = "stall"
	// failMalformed sends an event whose data is cut-off JSON after half
	// of the tokens, then the rest of the stream.
	failMalformed = "malformed"
)

// malformedEvent is the data failMalformed sends: JSON cut mid-object.
const malformedEvent = `{"id":"chatcmpl-broken","object":"chat.completion.chunk","choices":[{"delta":{"content":"`

// streamOptions is the "stream_options" request field.
type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// chatRequest is the part of a chat completion request the server reads.
type chatRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	Stream              bool            `json:"stream"`
	StreamOptions       *streamOptions  `json:"stream_options"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Tools               []chatTool      `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
}

// chatMessage is one request message; Content is a string, an array of
// content parts or null.
type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// contentPart is one element of an array-valued message content.
type contentPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// textRequest is the part of a legacy completion request the server reads.
type textRequest struct {
	Model         string          `json:"model"`
	Prompt        json.RawMessage `json:"prompt"`
	Stream        bool            `json:"stream"`
	StreamOptions *streamOptions  `json:"stream_options"`
	MaxTokens     *int            `json:"max_tokens"`
}

// embeddingRequest is the part of an embeddings request the server reads.
type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
}

// scenario is the behaviour of one request: Options with the header
// overrides applied.
type scenario struct {
	ttft   time.Duration
	itl    time.Duration
	tokens int
	fail   string
}

// parseScenario applies the x-fakellm-* request headers to opts.
func parseScenario(h http.Header, opts Options) (scenario, error) {
	sc := scenario{ttft: opts.TTFT, itl: opts.ITL, tokens: opts.Tokens}
	for _, o := range []struct {
		header string
		set    func(int)
	}{
		{HeaderTTFT, func(v int) { sc.ttft = time.Duration(v) * time.Millisecond }},
		{HeaderITL, func(v int) { sc.itl = time.Duration(v) * time.Millisecond }},
		{HeaderTokens, func(v int) { sc.tokens = v }},
	} {
		raw := strings.TrimSpace(h.Get(o.header))
		if raw == "" {
			continue
		}
		v, err := strconv.Atoi(raw)
		if err == nil && v < 0 {
			err = errors.New("value is negative")
		}
		if err != nil {
			return scenario{}, fmt.Errorf("cannot parse %s header: %w", o.header, err)
		}
		o.set(v)
	}
	sc.fail = strings.ToLower(strings.TrimSpace(h.Get(HeaderFail)))
	if only := h.Get(HeaderFailBackend); only != "" && only != opts.Name {
		sc.fail = "" // the failure is meant for another backend
	}
	switch sc.fail {
	case "", "429", "500", "503", "529", failDisconnect, failMidstream, failHang, failStall, failMalformed:
		return sc, nil
	default:
		return scenario{}, fmt.Errorf("cannot parse %s header: unknown failure %q", HeaderFail, sc.fail)
	}
}

// accept runs the steps shared by the completion endpoints: it counts the
// request, reads and decodes the body into req, records it, applies the
// scenario headers and injects immediate failures. It reports false when it
// has already answered (or abandoned) the request.
func (s *Server) accept(w http.ResponseWriter, r *http.Request, req any, model func() string) (scenario, bool) {
	s.countRequest()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if r.Context().Err() != nil {
			s.markCancelled()
			return scenario{}, false
		}
		writeError(w, http.StatusBadRequest, apiError{
			Message: fmt.Sprintf("cannot read request body: %v", err),
			Type:    typeInvalidRequest,
		})
		return scenario{}, false
	}
	decodeErr := json.Unmarshal(body, req)
	if decodeErr == nil {
		s.recordBody(model(), len(body))
		w.Header().Set(HeaderReceivedModel, model())
	} else {
		s.recordBody("", len(body))
	}

	sc, err := parseScenario(r.Header, s.opts)
	if err != nil {
		writeError(w, http.StatusBadRequest, apiError{Message: err.Error(), Type: typeInvalidRequest})
		return scenario{}, false
	}
	if sc.fail == failHang {
		s.wait(r.Context(), time.Duration(1<<62))
		return scenario{}, false
	}
	if s.injectFailure(w, sc.fail) {
		return scenario{}, false
	}
	if decodeErr != nil {
		writeError(w, http.StatusBadRequest, apiError{
			Message: fmt.Sprintf("We could not parse the JSON body of your request: %v", decodeErr),
			Type:    typeInvalidRequest,
		})
		return scenario{}, false
	}
	return sc, true
}

// injectFailure answers the request according to an immediate failure
// ("500", "429", "503" or "disconnect") and reports whether it did.
func (s *Server) injectFailure(w http.ResponseWriter, fail string) bool {
	switch fail {
	case "429":
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, apiError{
			Message: "Rate limit reached for requests (injected by " + HeaderFail + ").",
			Type:    "requests",
			Code:    ptr("rate_limit_exceeded"),
		})
	case "500":
		writeError(w, http.StatusInternalServerError, apiError{
			Message: "The server had an error while processing your request (injected by " + HeaderFail + ").",
			Type:    typeServerError,
		})
	case "503":
		writeError(w, http.StatusServiceUnavailable, apiError{
			Message: "The engine is currently overloaded, please try again later (injected by " + HeaderFail + ").",
			Type:    typeServerError,
		})
	case failDisconnect:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			// HTTP/2 and other unhijackable writers: reset the stream.
			panic(http.ErrAbortHandler)
		}
		conn.Close()
	default:
		return false
	}
	return true
}

// tokenLimit is a request field capping the output length, such as
// "max_tokens".
type tokenLimit struct {
	param string
	value *int
}

// outputTokens returns the number of tokens to generate and the finish
// reason: the scenario's token count, capped by the smallest limit set.
func outputTokens(sc scenario, limits ...tokenLimit) (int, string) {
	n, finish := sc.tokens, "stop"
	for _, l := range limits {
		if l.value != nil && *l.value < n {
			n, finish = *l.value, "length"
		}
	}
	return n, finish
}

// checkLimits rejects token limits below 1, as the OpenAI API does, and
// reports whether all limits are valid.
func checkLimits(w http.ResponseWriter, limits ...tokenLimit) bool {
	for _, l := range limits {
		if l.value != nil && *l.value < 1 {
			writeError(w, http.StatusBadRequest, apiError{
				Message: fmt.Sprintf("Invalid '%s': integer below minimum value. Expected a value >= 1, but got %d instead.", l.param, *l.value),
				Type:    typeInvalidRequest,
				Param:   ptr(l.param),
				Code:    ptr("integer_below_min_value"),
			})
			return false
		}
	}
	return true
}

// estimateTokens is the prompt token estimate for a text of chars
// characters: a quarter of them, at least 1.
func estimateTokens(chars int) int {
	return max(chars/4, 1)
}

// chatPromptTokens estimates the prompt tokens of messages from the
// characters of their text content.
func chatPromptTokens(messages []chatMessage) (int, error) {
	chars := 0
	for i, m := range messages {
		n, err := contentChars(m.Content)
		if err != nil {
			return 0, fmt.Errorf("cannot decode messages[%d].content: %w", i, err)
		}
		chars += n
	}
	return estimateTokens(chars), nil
}

// contentChars counts the characters of a message content that is null, a
// string or an array of content parts (only text parts count).
func contentChars(raw json.RawMessage) (int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var text string
	if err := json.Unmarshal(raw, &text); err == nil {
		return utf8.RuneCountInString(text), nil
	}
	var parts []contentPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return 0, errors.New("content must be a string or an array of content parts")
	}
	chars := 0
	for _, p := range parts {
		chars += utf8.RuneCountInString(p.Text)
	}
	return chars, nil
}

// promptTokens estimates the tokens of a legacy prompt: a string, an array
// of strings, an array of token ids or an array of token-id arrays. A
// missing prompt counts as 1 token.
func promptTokens(raw json.RawMessage) (int, error) {
	inputs, tokens, err := splitInputs(raw)
	if err != nil {
		return 0, fmt.Errorf("cannot decode prompt: %w", err)
	}
	if len(inputs) == 0 {
		return 1, nil
	}
	return tokens, nil
}

// errInputShape is returned by splitInputs for values of the wrong shape.
var errInputShape = errors.New("must be a string, an array of strings, an array of tokens or an array of token arrays")

// splitInputs splits a prompt or embeddings input (a string, an array of
// strings, an array of token ids or an array of token-id arrays) into one
// canonical string per input (the text, or the JSON of the token ids) and
// estimates their total tokens. Null yields no inputs.
func splitInputs(raw json.RawMessage) ([]string, int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, 0, nil
	}
	if input, tokens, ok := decodeInput(raw); ok {
		return []string{input}, tokens, nil
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil || len(elems) == 0 {
		return nil, 0, errInputShape
	}
	inputs := make([]string, 0, len(elems))
	total := 0
	text := false
	for i, elem := range elems {
		elem = bytes.TrimSpace(elem)
		input, tokens, ok := decodeInput(elem)
		if !ok || (i > 0 && (elem[0] == '"') != text) {
			return nil, 0, errInputShape // a token array, or strings and token arrays mixed
		}
		text = elem[0] == '"'
		inputs = append(inputs, input)
		total += tokens
	}
	return inputs, total, nil
}

// decodeInput decodes a single input, a string or a non-empty array of token
// ids, into its canonical string and token estimate.
func decodeInput(raw json.RawMessage) (string, int, bool) {
	var text string
	if err := json.Unmarshal(raw, &text); err == nil {
		return text, estimateTokens(utf8.RuneCountInString(text)), true
	}
	var ids []int
	if err := json.Unmarshal(raw, &ids); err != nil || len(ids) == 0 {
		return "", 0, false
	}
	canonical := make([]string, len(ids))
	for i, id := range ids {
		canonical[i] = strconv.Itoa(id)
	}
	return "[" + strings.Join(canonical, ",") + "]", len(ids), true
}

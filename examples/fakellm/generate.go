package fakellm

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// embeddingDims is the length of every generated embedding.
const embeddingDims = 8

// tokenText returns the text of output token i.
func tokenText(i int) string {
	return fmt.Sprintf("tok%d ", i)
}

// completion is one generated chat or legacy completion.
type completion struct {
	chat         bool
	id           string
	created      int64
	model        string
	promptTokens int
	tokens       int
	finish       string
	includeUsage bool
	tool         string // function to call after the text, "" for none
	cachedTokens *int   // prompt tokens from the prefix cache (Sim only), nil to omit
}

// usage returns the token accounting of c.
func (c *completion) usage() usage {
	u := usage{PromptTokens: c.promptTokens, CompletionTokens: c.tokens, TotalTokens: c.promptTokens + c.tokens}
	if c.cachedTokens != nil {
		u.Details = &promptDetails{CachedTokens: *c.cachedTokens}
	}
	return u
}

// chunkUsage returns the "usage" member of streamed chunks before the usage
// chunk: null when the client asked for usage, omitted otherwise.
func (c *completion) chunkUsage() []byte {
	if c.includeUsage {
		return nullJSON
	}
	return nil
}

// chunk returns a streamed chunk carrying delta (chat) or text (legacy) and,
// when finish is set, the finish reason.
func (c *completion) chunk(delta chatDelta, text string, finish *string) []byte {
	if c.chat {
		return mustEncode(chatChunk{
			ID: c.id, Object: "chat.completion.chunk", Created: c.created, Model: c.model,
			Choices: []chatChunkChoice{{Delta: delta, FinishReason: finish}},
			Usage:   c.chunkUsage(),
		})
	}
	return mustEncode(textCompletion{
		ID: c.id, Object: "text_completion", Created: c.created, Model: c.model,
		Choices: []textChoice{{Text: text, FinishReason: finish}},
		Usage:   c.chunkUsage(),
	})
}

// usageChunk returns the final streamed chunk: no choices, only usage.
func (c *completion) usageChunk() []byte {
	if c.chat {
		return mustEncode(chatChunk{
			ID: c.id, Object: "chat.completion.chunk", Created: c.created, Model: c.model,
			Choices: []chatChunkChoice{}, Usage: c.usage().raw(),
		})
	}
	return mustEncode(textCompletion{
		ID: c.id, Object: "text_completion", Created: c.created, Model: c.model,
		Choices: []textChoice{}, Usage: c.usage().raw(),
	})
}

// response returns the non-streaming response object.
func (c *completion) response() []byte {
	var text strings.Builder
	for i := range c.tokens {
		text.WriteString(tokenText(i))
	}
	if c.chat {
		return mustEncode(chatCompletion{
			ID: c.id, Object: "chat.completion", Created: c.created, Model: c.model,
			Choices: []chatChoice{{
				Message:      assistantMessage{Role: "assistant", Content: text.String(), ToolCalls: c.toolCalls()},
				FinishReason: c.finish,
			}},
			Usage: c.usage(),
		})
	}
	return mustEncode(textCompletion{
		ID: c.id, Object: "text_completion", Created: c.created, Model: c.model,
		Choices: []textChoice{{Text: text.String(), FinishReason: &c.finish}},
		Usage:   c.usage().raw(),
	})
}

// serveChat answers POST /v1/chat/completions.
func (s *Server) serveChat(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	sc, ok := s.accept(w, r, &req, func() string { return req.Model })
	if !ok {
		return
	}
	limits := []tokenLimit{{"max_tokens", req.MaxTokens}, {"max_completion_tokens", req.MaxCompletionTokens}}
	if !checkLimits(w, limits...) {
		return
	}
	prompt, err := chatPromptTokens(req.Messages)
	if err != nil {
		writeError(w, http.StatusBadRequest, apiError{Message: err.Error(), Type: typeInvalidRequest, Param: ptr("messages")})
		return
	}
	c := &completion{chat: true, id: newID("chatcmpl-"), model: req.Model, promptTokens: prompt}
	c.tokens, c.finish = outputTokens(sc, limits...)
	c.planToolCall(req)
	s.generate(w, r, c, sc, req.Stream, req.StreamOptions)
}

// serveText answers POST /v1/completions.
func (s *Server) serveText(w http.ResponseWriter, r *http.Request) {
	var req textRequest
	sc, ok := s.accept(w, r, &req, func() string { return req.Model })
	if !ok {
		return
	}
	limit := tokenLimit{"max_tokens", req.MaxTokens}
	if !checkLimits(w, limit) {
		return
	}
	prompt, err := promptTokens(req.Prompt)
	if err != nil {
		writeError(w, http.StatusBadRequest, apiError{Message: err.Error(), Type: typeInvalidRequest, Param: ptr("prompt")})
		return
	}
	c := &completion{id: newID("cmpl-"), model: req.Model, promptTokens: prompt}
	c.tokens, c.finish = outputTokens(sc, limit)
	s.generate(w, r, c, sc, req.Stream, req.StreamOptions)
}

// generate streams c or answers it in one response.
func (s *Server) generate(w http.ResponseWriter, r *http.Request, c *completion, sc scenario, stream bool, opts *streamOptions) {
	c.created = time.Now().Unix()
	if !stream {
		delay := sc.ttft + time.Duration(max(c.tokens-1, 0))*sc.itl
		s.respond(w, r, delay, sc.fail, c.response())
		return
	}
	c.includeUsage = opts != nil && opts.IncludeUsage
	s.stream(w, r, c, sc)
}

// stream writes c as server-sent events after the scenario's TTFT, one
// token per ITL (streamEvents).
func (s *Server) stream(w http.ResponseWriter, r *http.Request, c *completion, sc scenario) {
	ctx := r.Context()
	if !s.wait(ctx, sc.ttft) {
		return
	}
	s.streamEvents(ctx, w, c, sc, func(int) time.Duration { return sc.itl })
}

// streamEvents writes c as server-sent events: the role chunk (chat only),
// the first token at once and token i after step(i), the finish chunk, the
// usage chunk when requested and "[DONE]". With the "midstream" failure it
// aborts the connection after half of the tokens. A client gone marks the
// request cancelled.
func (s *Server) streamEvents(ctx context.Context, w http.ResponseWriter, c *completion, sc scenario, step func(i int) time.Duration) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		s.markCancelled()
		return
	}
	send := func(data []byte) bool {
		if ctx.Err() != nil || writeEvent(w, rc, data) != nil {
			s.markCancelled()
			return false
		}
		return true
	}
	if c.chat && !send(c.chunk(chatDelta{Role: "assistant", Content: ptr("")}, "", nil)) {
		return
	}
	n := c.tokens
	if sc.fail == failMidstream {
		n /= 2
	}
	for i := range n {
		if i > 0 && !s.wait(ctx, step(i)) {
			return
		}
		if !s.midstreamFault(ctx, w, rc, sc.fail, i, n) {
			return
		}
		if !send(c.chunk(chatDelta{Content: ptr(tokenText(i))}, tokenText(i), nil)) {
			return
		}
	}
	if sc.fail == failMidstream {
		panic(http.ErrAbortHandler)
	}
	if !c.streamToolCall(send) || !send(c.chunk(chatDelta{}, "", &c.finish)) {
		return
	}
	if c.includeUsage && !send(c.usageChunk()) {
		return
	}
	if send([]byte("[DONE]")) {
		s.markCompleted()
	}
}

// midstreamFault injects the "stall" and "malformed" failures before token
// i of n: a stall waits at the half for the client to go (and reports
// false), malformed writes cut-off JSON there. It reports whether to go on.
func (s *Server) midstreamFault(ctx context.Context, w http.ResponseWriter, rc *http.ResponseController, fail string, i, n int) bool {
	if i != n/2 {
		return true
	}
	switch fail {
	case failStall:
		s.wait(ctx, time.Duration(1<<62))
		return false
	case failMalformed:
		return writeEvent(w, rc, []byte(malformedEvent)) == nil
	}
	return true
}

// writeEvent writes one "data: …" server-sent event and flushes it.
func writeEvent(w http.ResponseWriter, rc *http.ResponseController, data []byte) error {
	event := make([]byte, 0, len(data)+8)
	event = append(event, "data: "...)
	event = append(event, data...)
	event = append(event, "\n\n"...)
	if _, err := w.Write(event); err != nil {
		return fmt.Errorf("cannot write event: %w", err)
	}
	if err := rc.Flush(); err != nil {
		return fmt.Errorf("cannot flush event: %w", err)
	}
	return nil
}

// respond waits delay, then writes body as a 200 JSON response. With the
// "midstream" failure it sends the headers and half of the body, then
// aborts the connection.
func (s *Server) respond(w http.ResponseWriter, r *http.Request, delay time.Duration, fail string, body []byte) {
	ctx := r.Context()
	if !s.wait(ctx, delay) {
		return
	}
	if fail == failMidstream {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body[:len(body)/2])
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
	if err := writeBody(w, http.StatusOK, body); err != nil {
		s.markCancelled()
		return
	}
	if err := http.NewResponseController(w).Flush(); err != nil {
		s.markCancelled()
		return
	}
	s.markCompleted()
}

// wait sleeps for d unless ctx ends first, in which case it records the
// cancellation and reports false.
func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		if ctx.Err() != nil {
			s.markCancelled()
			return false
		}
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		s.markCancelled()
		return false
	case <-t.C:
		return true
	}
}

// serveEmbeddings answers POST /v1/embeddings with one deterministic
// embeddingDims-long unit vector per input.
func (s *Server) serveEmbeddings(w http.ResponseWriter, r *http.Request) {
	var req embeddingRequest
	sc, ok := s.accept(w, r, &req, func() string { return req.Model })
	if !ok {
		return
	}
	inputs, tokens, err := splitInputs(req.Input)
	if err == nil && len(inputs) == 0 {
		err = errors.New("'input' is a required property")
	}
	if err == nil && slices.Contains(inputs, "") {
		err = errors.New("cannot be an empty string") // as the OpenAI API documents
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, apiError{
			Message: fmt.Sprintf("Invalid 'input': %v", err), Type: typeInvalidRequest, Param: ptr("input"),
		})
		return
	}
	if req.EncodingFormat != "" && req.EncodingFormat != "float" && req.EncodingFormat != "base64" {
		writeError(w, http.StatusBadRequest, apiError{
			Message: fmt.Sprintf("Invalid 'encoding_format': %q is not one of 'float' or 'base64'.", req.EncodingFormat),
			Type:    typeInvalidRequest, Param: ptr("encoding_format"),
		})
		return
	}
	list := embeddingList{
		Object: "list",
		Data:   make([]embedding, len(inputs)),
		Model:  req.Model,
		Usage:  embeddingUsage{PromptTokens: tokens, TotalTokens: tokens},
	}
	for i, input := range inputs {
		var vec any = Embed(input)
		if req.EncodingFormat == "base64" {
			vec = encodeBase64(Embed(input))
		}
		list.Data[i] = embedding{Object: "embedding", Index: i, Embedding: vec}
	}
	s.respond(w, r, sc.ttft, sc.fail, mustEncode(list))
}

// Embed returns the embedding the server gives to input, a string or the
// JSON of a token-id array without spaces ("[1,2,3]"): a deterministic unit
// vector of 8 floats derived from an FNV-1a hash of input.
func Embed(input string) []float32 {
	h := fnv.New64a()
	h.Write([]byte(input))
	state := h.Sum64()
	vec := make([]float32, embeddingDims)
	values := make([]float64, embeddingDims)
	var norm float64
	for i := range values {
		state = splitmix64(state)
		values[i] = float64(state>>11)/(1<<53)*2 - 1
		norm += values[i] * values[i]
	}
	norm = math.Sqrt(norm)
	for i, v := range values {
		vec[i] = float32(v / norm)
	}
	return vec
}

// splitmix64 advances a SplitMix64 generator.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// encodeBase64 returns the base64 of vec's little-endian float32s, the
// OpenAI "base64" embedding encoding.
func encodeBase64(vec []float32) string {
	buf := make([]byte, 0, 4*len(vec))
	for _, v := range vec {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
	}
	return base64.StdEncoding.EncodeToString(buf)
}

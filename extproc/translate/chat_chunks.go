package translate

import (
	"encoding/json"
	"strconv"
)

// chatChunks writes chat.completion.chunk events for the streams that
// translate into OpenAI Chat Completions. The fixed head of every chunk is
// built once per stream, so a chunk costs a few appends.
type chatChunks struct {
	prefix []byte // `{"id":…,"object":…,"created":…,"model":…,"choices":[`
}

// setPrefix fixes the chunk head; id and model are JSON string literals.
func (c *chatChunks) setPrefix(id, model string, created int64) {
	c.prefix = append(c.prefix[:0], `{"id":`...)
	c.prefix = append(c.prefix, id...)
	c.prefix = append(c.prefix, `,"object":"chat.completion.chunk","created":`...)
	c.prefix = strconv.AppendInt(c.prefix, created, 10)
	c.prefix = append(c.prefix, `,"model":`...)
	c.prefix = append(c.prefix, model...)
	c.prefix = append(c.prefix, `,"choices":[`...)
}

// chunk appends one chunk whose delta is open+raw+close and whose
// finish_reason is finish[0] (null when absent).
func (c *chatChunks) chunk(dst []byte, open, raw, close string, finish ...string) []byte {
	dst = append(dst, "data: "...)
	dst = append(dst, c.prefix...)
	dst = append(dst, `{"index":0,"delta":`...)
	dst = append(dst, open...)
	dst = append(dst, raw...)
	dst = append(dst, close...)
	dst = append(dst, `,"logprobs":null,"finish_reason":`...)
	if len(finish) > 0 {
		dst = strconv.AppendQuote(dst, finish[0])
	} else {
		dst = append(dst, "null"...)
	}
	return append(dst, "}]}\n\n"...)
}

// toolStart appends the chunk opening tool call k; id, name and args are
// JSON string literals.
func (c *chatChunks) toolStart(dst []byte, k int, id, name, args string) []byte {
	dst = append(dst, "data: "...)
	dst = append(dst, c.prefix...)
	dst = append(dst, `{"index":0,"delta":{"tool_calls":[{"index":`...)
	dst = strconv.AppendInt(dst, int64(k), 10)
	dst = append(dst, `,"id":`...)
	dst = append(dst, id...)
	dst = append(dst, `,"type":"function","function":{"name":`...)
	dst = append(dst, name...)
	dst = append(dst, `,"arguments":`...)
	dst = append(dst, args...)
	return append(dst, `}}]},"logprobs":null,"finish_reason":null}]}`+"\n\n"...)
}

// toolArgs appends a piece (a JSON string literal) of tool call k's arguments.
func (c *chatChunks) toolArgs(dst []byte, k int, piece string) []byte {
	dst = append(dst, "data: "...)
	dst = append(dst, c.prefix...)
	dst = append(dst, `{"index":0,"delta":{"tool_calls":[{"index":`...)
	dst = strconv.AppendInt(dst, int64(k), 10)
	dst = append(dst, `,"function":{"arguments":`...)
	dst = append(dst, piece...)
	return append(dst, `}}]},"logprobs":null,"finish_reason":null}]}`+"\n\n"...)
}

// end appends the usage chunk (when the client asked for it) and [DONE].
func (c *chatChunks) end(dst []byte, includeUsage bool, u *oaUsage) []byte {
	if includeUsage {
		dst = append(dst, "data: "...)
		dst = append(dst, c.prefix...)
		dst = append(dst, `],"usage":`...)
		b, _ := json.Marshal(u)
		dst = append(dst, b...)
		dst = append(dst, "}\n\n"...)
	}
	return append(dst, "data: [DONE]\n\n"...)
}

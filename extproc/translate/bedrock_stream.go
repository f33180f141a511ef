package translate

import (
	"bytes"
	"encoding/binary"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/tidwall/gjson"
)

// maxBedrockFrame bounds one event-stream frame: the format's own limits
// (16 MiB payload, 128 KiB headers) plus prelude and checksums.
const maxBedrockFrame = 16*1024*1024 + 128*1024 + 16

// bedrockStream turns a ConverseStream response, AWS event-stream binary
// frames, into Anthropic Messages events, which the two Bedrock
// translations pass on (Messages clients) or translate further (Chat
// clients). Frames are decoded by the AWS SDK's decoder, which checks
// both CRCs; only the unfinished frame is held between chunks.
type bedrockStream struct {
	id, model string // JSON string literals for message_start
	dec       *eventstream.Decoder
	buf       []byte // the unfinished frame
	payload   []byte // reused for each frame's payload
	rd        bytes.Reader
	blocks    []bool // content block index → started and still open
	usage     bdUsage
	stop      string // from messageStop; message_delta waits for metadata
	started   bool
	stopped   bool
	done      bool // message_stop or an error was sent; later input is ignored
	// invoke: the frames are InvokeModelWithResponseStream chunks carrying
	// Anthropic events (anthropic_invoke.go), not ConverseStream events.
	invoke bool
	event  []byte // an invoke chunk's decoded event, reused
}

// newBedrockStream starts a stream whose message id begins with idPrefix.
func newBedrockStream(opts Options, idPrefix string) bedrockStream {
	return bedrockStream{
		id:    strconv.Quote(opts.newID(idPrefix)),
		model: strconv.Quote(opts.Model),
		dec:   eventstream.NewDecoder(),
	}
}

// translate appends the Anthropic events for the frames completed by chunk.
func (s *bedrockStream) translate(dst, chunk []byte, end bool) []byte {
	if s.done {
		return dst
	}
	data := chunk
	if len(s.buf) > 0 {
		s.buf = append(s.buf, chunk...)
		data = s.buf
	}
	off := 0
	for len(data)-off >= 4 && !s.done {
		total := int(binary.BigEndian.Uint32(data[off:]))
		if total < 16 || total > maxBedrockFrame {
			return s.fail(dst, "api_error", "The model backend sent a malformed event-stream frame.")
		}
		if len(data)-off < total {
			break
		}
		s.rd.Reset(data[off : off+total])
		msg, err := s.dec.Decode(&s.rd, s.payload[:0])
		if err != nil {
			return s.fail(dst, "api_error", "The model backend sent an event-stream frame that fails its checksum.")
		}
		s.payload = msg.Payload
		off += total
		if s.invoke {
			dst = s.invokeChunk(dst, msg)
			continue
		}
		dst = s.message(dst, msg)
	}
	s.buf = append(s.buf[:0], data[off:]...)
	if end && !s.done {
		if s.stopped {
			return s.finish(dst)
		}
		return s.fail(dst, "api_error", "The model backend ended the stream before the response was complete.")
	}
	return dst
}

func headerString(m eventstream.Message, name string) string {
	if v := m.Headers.Get(name); v != nil {
		if sv, ok := v.(eventstream.StringValue); ok {
			return string(sv)
		}
	}
	return ""
}

// message handles one frame: an event, or an exception the service sent
// instead of the rest of the stream.
func (s *bedrockStream) message(dst []byte, m eventstream.Message) []byte {
	if out, failed := s.exception(dst, m); failed {
		return out
	}
	p := m.Payload
	if !gjson.ValidBytes(p) {
		return s.fail(dst, "api_error", "The model backend sent an event that is not JSON.")
	}
	typ := headerString(m, ":event-type")
	if !s.started && typ != "messageStart" {
		return s.fail(dst, "api_error", "The model backend stream did not start with messageStart.")
	}
	switch typ {
	case "messageStart":
		s.started = true
		dst = append(dst, `event: message_start`+"\n"+`data: {"type":"message_start","message":{"id":`...)
		dst = append(dst, s.id...)
		dst = append(dst, `,"type":"message","role":"assistant","model":`...)
		dst = append(dst, s.model...)
		return append(dst, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}`+"\n\n"...)
	case "contentBlockStart":
		return s.blockStart(dst, p)
	case "contentBlockDelta":
		return s.blockDelta(dst, p)
	case "contentBlockStop":
		idx := int(gjson.GetBytes(p, "contentBlockIndex").Int())
		if idx < 0 || idx >= len(s.blocks) || !s.blocks[idx] {
			return dst
		}
		s.blocks[idx] = false
		return appendBlockEvent(dst, "content_block_stop", idx, "")
	case "messageStop":
		s.stopped = true
		s.stop = gjson.GetBytes(p, "stopReason").Str
	case "metadata":
		u := gjson.GetBytes(p, "usage")
		s.usage = bdUsage{
			InputTokens: int(u.Get("inputTokens").Int()), OutputTokens: int(u.Get("outputTokens").Int()),
			CacheReadInputTokens: int(u.Get("cacheReadInputTokens").Int()), CacheWriteInputTokens: int(u.Get("cacheWriteInputTokens").Int()),
		}
		if s.stopped {
			return s.finish(dst)
		}
	}
	return dst
}

// open marks block idx started, appending its content_block_start (of
// JSON block) the first time; Bedrock starts text and reasoning blocks
// with their first delta.
func (s *bedrockStream) open(dst []byte, idx int, block string) ([]byte, bool) {
	if idx < 0 || idx >= 1<<16 {
		return s.fail(dst, "api_error", "The model backend sent a content block index out of range."), false
	}
	for len(s.blocks) <= idx {
		s.blocks = append(s.blocks, false)
	}
	if s.blocks[idx] {
		return dst, true
	}
	s.blocks[idx] = true
	return appendBlockEvent(dst, "content_block_start", idx, `"content_block":`+block), true
}

func (s *bedrockStream) blockStart(dst, p []byte) []byte {
	idx := int(gjson.GetBytes(p, "contentBlockIndex").Int())
	tu := gjson.GetBytes(p, "start.toolUse")
	if !tu.Exists() {
		return dst
	}
	block := `{"type":"tool_use","id":` + rawString(tu.Get("toolUseId")) + `,"name":` + rawString(tu.Get("name")) + `,"input":{}}`
	dst, _ = s.open(dst, idx, block)
	return dst
}

func (s *bedrockStream) blockDelta(dst, p []byte) []byte {
	idx := int(gjson.GetBytes(p, "contentBlockIndex").Int())
	d := gjson.GetBytes(p, "delta")
	var ok bool
	switch {
	case d.Get("text").Type == gjson.String:
		if dst, ok = s.open(dst, idx, `{"type":"text","text":""}`); !ok {
			return dst
		}
		return appendBlockEvent(dst, "content_block_delta", idx, `"delta":{"type":"text_delta","text":`+d.Get("text").Raw+`}`)
	case d.Get("toolUse").Exists():
		if idx < 0 || idx >= len(s.blocks) || !s.blocks[idx] {
			return s.fail(dst, "api_error", "The model backend sent tool input for an unknown content block.")
		}
		return appendBlockEvent(dst, "content_block_delta", idx, `"delta":{"type":"input_json_delta","partial_json":`+rawString(d.Get("toolUse.input"))+`}`)
	case d.Get("reasoningContent").Exists():
		if dst, ok = s.open(dst, idx, `{"type":"thinking","thinking":""}`); !ok {
			return dst
		}
		r := d.Get("reasoningContent")
		if t := r.Get("text"); t.Type == gjson.String {
			return appendBlockEvent(dst, "content_block_delta", idx, `"delta":{"type":"thinking_delta","thinking":`+t.Raw+`}`)
		}
		if sig := r.Get("signature"); sig.Type == gjson.String {
			return appendBlockEvent(dst, "content_block_delta", idx, `"delta":{"type":"signature_delta","signature":`+sig.Raw+`}`)
		}
	}
	return dst
}

// appendBlockEvent appends an Anthropic content block event; rest holds
// the fields after the index (may be empty).
func appendBlockEvent(dst []byte, typ string, idx int, rest string) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, typ...)
	dst = append(dst, "\ndata: {\"type\":\""...)
	dst = append(dst, typ...)
	dst = append(dst, `","index":`...)
	dst = strconv.AppendInt(dst, int64(idx), 10)
	if rest != "" {
		dst = append(dst, ',')
		dst = append(dst, rest...)
	}
	return append(dst, "}\n\n"...)
}

// finish appends message_delta (stop reason and usage) and message_stop.
func (s *bedrockStream) finish(dst []byte) []byte {
	s.done = true
	u := anthropicUsageOf(s.usage)
	dst = append(dst, `event: message_delta`+"\n"+`data: {"type":"message_delta","delta":{"stop_reason":`...)
	dst = strconv.AppendQuote(dst, bedrockStopReason(s.stop))
	dst = append(dst, `,"stop_sequence":null},"usage":{"input_tokens":`...)
	dst = strconv.AppendInt(dst, int64(u.InputTokens), 10)
	dst = append(dst, `,"output_tokens":`...)
	dst = strconv.AppendInt(dst, int64(u.OutputTokens), 10)
	dst = append(dst, `,"cache_creation_input_tokens":`...)
	dst = strconv.AppendInt(dst, int64(u.CacheCreationInputTokens), 10)
	dst = append(dst, `,"cache_read_input_tokens":`...)
	dst = strconv.AppendInt(dst, int64(u.CacheReadInputTokens), 10)
	dst = append(dst, "}}\n\n"...)
	return append(dst, `event: message_stop`+"\n"+`data: {"type":"message_stop"}`+"\n\n"...)
}

// exception turns a frame that is not an event (an exception the service
// sent instead of the rest of the stream, or an error) into the client's
// error event; failed is false for an event.
func (s *bedrockStream) exception(dst []byte, m eventstream.Message) (out []byte, failed bool) {
	switch headerString(m, ":message-type") {
	case "event":
		return dst, false
	case "exception":
		typ := headerString(m, ":exception-type")
		msg := gjson.GetBytes(m.Payload, "message").Str
		if msg == "" {
			msg = "The model backend failed while streaming (" + typ + ")."
		}
		return s.fail(dst, bedrockExceptionType(typ), msg), true
	}
	msg := headerString(m, ":error-message")
	if msg == "" {
		msg = "The model backend failed while streaming."
	}
	return s.fail(dst, "api_error", msg), true
}

// fail appends an Anthropic error event and ends the stream.
func (s *bedrockStream) fail(dst []byte, typ, msg string) []byte {
	s.done = true
	s.buf = s.buf[:0]
	return sseError(dst, typ, msg)
}

func sseError(dst []byte, typ, msg string) []byte {
	dst = append(dst, "event: error\ndata: "...)
	dst = append(dst, AnthropicErrorOfType(typ, msg)...)
	return append(dst, "\n\n"...)
}

// bedrockExceptionType maps a ConverseStream exception (or an error's
// x-amzn-errortype) to an Anthropic error type.
func bedrockExceptionType(typ string) string {
	switch typ {
	case "throttlingException", "ThrottlingException":
		return "rate_limit_error"
	case "validationException", "ValidationException":
		return "invalid_request_error"
	case "serviceUnavailableException", "ServiceUnavailableException":
		return "overloaded_error"
	}
	return "api_error"
}

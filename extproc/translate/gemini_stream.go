package translate

import (
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/streamgate/streamgate/extproc/sse"
)

// geminiStream turns a streamGenerateContent?alt=sse response, each event a
// whole GenerateContentResponse holding the next parts, into Anthropic
// Messages events, which the two Gemini translations pass on (Messages
// clients) or translate further (Chat clients). Only the unfinished event
// is held between chunks. The stream ends when the connection does; the
// finishReason and the last usageMetadata seen then close the message.
type geminiStream struct {
	id, model string // JSON string literals for message_start
	base      string // tool call ids begin with it
	dec       sse.Decoder
	block     int // index of the open content block, -1 when none
	next      int // index of the next content block
	tools     int // function calls so far
	usage     gmUsage
	finish    string
	started   bool
	done      bool // message_stop or an error was sent; later input is ignored
}

// newGeminiStream starts a stream whose message id begins with idPrefix.
func newGeminiStream(opts Options, idPrefix string) geminiStream {
	base := opts.newID("")
	return geminiStream{id: strconv.Quote(idPrefix + base), model: strconv.Quote(opts.Model), base: base, block: -1}
}

// translate appends the Anthropic events for the SSE events completed by chunk.
func (s *geminiStream) translate(dst, chunk []byte, end bool) []byte {
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
			return s.fail(dst, "api_error", "The model backend sent an event the gateway cannot frame.")
		}
		if !ok {
			break
		}
		dst = s.event(dst, ev.Data)
	}
	if end && !s.done {
		if s.finish != "" {
			return s.complete(dst)
		}
		return s.fail(dst, "api_error", "The model backend ended the stream before the response was complete.")
	}
	return dst
}

// event handles one GenerateContentResponse (or an error object).
func (s *geminiStream) event(dst, data []byte) []byte {
	if !gjson.ValidBytes(data) {
		return s.fail(dst, "api_error", "The model backend sent an event that is not JSON.")
	}
	if e := gjson.GetBytes(data, "error"); e.Exists() {
		msg := e.Get("message").Str
		if msg == "" {
			msg = "The model backend failed while streaming."
		}
		typ := geminiStatusType(e.Get("status").Str)
		if typ == "" {
			typ = "api_error"
		}
		return s.fail(dst, typ, msg)
	}
	if !s.started {
		s.started = true
		dst = append(dst, `event: message_start`+"\n"+`data: {"type":"message_start","message":{"id":`...)
		dst = append(dst, s.id...)
		dst = append(dst, `,"type":"message","role":"assistant","model":`...)
		dst = append(dst, s.model...)
		dst = append(dst, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}`+"\n\n"...)
	}
	if u := gjson.GetBytes(data, "usageMetadata"); u.Exists() {
		s.usage = gmUsageOf(u)
	}
	if gjson.GetBytes(data, "promptFeedback.blockReason").Str != "" {
		s.finish = "SAFETY"
	}
	c := gjson.GetBytes(data, "candidates.0")
	c.Get("content.parts").ForEach(func(_, p gjson.Result) bool {
		dst = s.part(dst, p)
		return true
	})
	if f := c.Get("finishReason").Str; f != "" {
		s.finish = f
	}
	return dst
}

// part appends the events of one part: text continues an open text block
// or opens one; a function call (always whole in Gemini) is a tool_use
// block of its own. Thoughts are not passed on.
func (s *geminiStream) part(dst []byte, p gjson.Result) []byte {
	if fc := p.Get("functionCall"); fc.Exists() {
		dst = s.closeBlock(dst)
		args := fc.Get("args").Raw
		if args == "" || args == "null" {
			args = "{}"
		}
		id := strconv.Quote(geminiToolID(s.base, s.tools, fc.Get("id").Str, p.Get("thoughtSignature").Str))
		s.tools++
		idx := s.next
		s.next++
		dst = appendBlockEvent(dst, "content_block_start", idx, `"content_block":{"type":"tool_use","id":`+id+`,"name":`+rawString(fc.Get("name"))+`,"input":{}}`)
		dst = appendBlockEvent(dst, "content_block_delta", idx, `"delta":{"type":"input_json_delta","partial_json":`+strconv.Quote(string(compactJSON([]byte(args))))+`}`)
		return appendBlockEvent(dst, "content_block_stop", idx, "")
	}
	t := p.Get("text")
	if t.Type != gjson.String || p.Get("thought").Bool() {
		return dst
	}
	if s.block < 0 {
		s.block = s.next
		s.next++
		dst = appendBlockEvent(dst, "content_block_start", s.block, `"content_block":{"type":"text","text":""}`)
	}
	return appendBlockEvent(dst, "content_block_delta", s.block, `"delta":{"type":"text_delta","text":`+t.Raw+`}`)
}

func (s *geminiStream) closeBlock(dst []byte) []byte {
	if s.block < 0 {
		return dst
	}
	dst = appendBlockEvent(dst, "content_block_stop", s.block, "")
	s.block = -1
	return dst
}

// complete appends the end of the open block, message_delta (stop reason
// and usage) and message_stop.
func (s *geminiStream) complete(dst []byte) []byte {
	dst = s.closeBlock(dst)
	s.done = true
	u := anthropicUsageOfGemini(s.usage)
	dst = append(dst, `event: message_delta`+"\n"+`data: {"type":"message_delta","delta":{"stop_reason":`...)
	dst = strconv.AppendQuote(dst, geminiStopReason(s.finish, s.tools > 0))
	dst = append(dst, `,"stop_sequence":null},"usage":{"input_tokens":`...)
	dst = strconv.AppendInt(dst, int64(u.InputTokens), 10)
	dst = append(dst, `,"output_tokens":`...)
	dst = strconv.AppendInt(dst, int64(u.OutputTokens), 10)
	dst = append(dst, `,"cache_creation_input_tokens":0,"cache_read_input_tokens":`...)
	dst = strconv.AppendInt(dst, int64(u.CacheReadInputTokens), 10)
	dst = append(dst, "}}\n\n"...)
	return append(dst, `event: message_stop`+"\n"+`data: {"type":"message_stop"}`+"\n\n"...)
}

// fail appends an Anthropic error event and ends the stream.
func (s *geminiStream) fail(dst []byte, typ, msg string) []byte {
	s.done = true
	return sseError(dst, typ, msg)
}

package translate

import (
	"encoding/json"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/streamgate/streamgate/extproc/sse"
)

// Stream translates chat.completion.chunk events into the Responses event
// sequence: response.created and response.in_progress, then per output
// item response.output_item.added, its content (reasoning's
// response.reasoning_summary_part.added, response.reasoning_summary_text.delta
// ... and their .done events; a message's
// response.content_part.added, response.output_text.delta ...,
// response.output_text.done, response.content_part.done; a function call's
// response.function_call_arguments.delta ... and .done) and
// response.output_item.done, and last response.completed with usage. Every
// event carries type and sequence_number. A backend error or a cut stream
// ends with an error event and response.failed.
//
// Unlike the other translations this one keeps the open item's text: the
// .done events and response.completed repeat the whole output.
func (t *responsesToChat) Stream(dst, chunk []byte, end bool) []byte {
	return t.st.translate(dst, chunk, end)
}

// chatToResponsesStream is the per-stream state of a Chat → Responses
// event translation.
type chatToResponsesStream struct {
	t *responsesToChat
	chatStreamIn
	seq      int64
	id       string // the backend's completion id
	model    string
	created  int64
	open     int   // kind of the open item: blockNone, blockText, blockThinking or blockTool
	openTool int64 // chat tool call index of the open function call
	tools    int64 // chat tool call indexes below this one have started
	itemID   string
	itemJSON []byte // itemID as a JSON string, for every event of the item
	callID   string
	name     string
	text     []byte // the open item's text or arguments so far
	items    []json.RawMessage
	finish   string
	usage    *rsUsage
	scratch  []byte
	ev       []byte // the event being written
}

func (s *chatToResponsesStream) translate(dst, chunk []byte, end bool) []byte {
	return s.feed(s, dst, chunk, end)
}

func (s *chatToResponsesStream) event(dst, data []byte) []byte {
	root := gjson.ParseBytes(data)
	if e := root.Get("error"); e.Exists() {
		msg := e.Get("message").Str
		if msg == "" {
			msg = "The model backend failed while streaming."
		}
		return s.fail(dst, msg)
	}
	if !s.started {
		dst = s.start(dst, root)
	}
	if u := root.Get("usage"); u.IsObject() {
		s.usage = responsesUsage(oaUsage{PromptTokens: int(u.Get("prompt_tokens").Int()), CompletionTokens: int(u.Get("completion_tokens").Int()),
			PromptTokensDetails: &oaPromptDetails{CachedTokens: int(u.Get("prompt_tokens_details.cached_tokens").Int())}})
	}
	choice := root.Get("choices.0")
	if !choice.Exists() {
		return dst
	}
	delta := choice.Get("delta")
	r := delta.Get("reasoning_content")
	if r.Type != gjson.String {
		r = delta.Get("reasoning")
	}
	if r.Type == gjson.String && r.Str != "" {
		dst = s.reasoningDelta(dst, r)
	}
	if c := delta.Get("content"); c.Type == gjson.String && c.Str != "" {
		dst = s.textDelta(dst, c)
	}
	for _, tc := range delta.Get("tool_calls").Array() {
		if dst = s.toolCall(dst, tc); s.done {
			return dst
		}
	}
	if f := choice.Get("finish_reason"); f.Type == gjson.String {
		dst = s.closeItem(dst)
		s.finished, s.finish = true, f.Str
	}
	return dst
}

// start emits response.created and response.in_progress.
func (s *chatToResponsesStream) start(dst []byte, root gjson.Result) []byte {
	s.started = true
	s.id, s.model, s.created = root.Get("id").Str, root.Get("model").Str, root.Get("created").Int()
	r := mustJSON(s.t.response(s.id, s.model, s.created, "in_progress"))
	dst = s.emit(dst, "response.created", `"response":`, r)
	return s.emit(dst, "response.in_progress", `"response":`, r)
}

func (s *chatToResponsesStream) textDelta(dst []byte, c gjson.Result) []byte {
	if s.open != blockText {
		dst = s.closeItem(dst)
		s.open, s.itemID, s.text = blockText, "msg_"+s.id, s.text[:0]
		s.itemJSON = mustJSON(s.itemID)
		dst = s.itemEvent(dst, "response.output_item.added", mustJSON(messageItem(s.itemID, "", "in_progress")))
		dst = s.partEvent(dst, "response.content_part.added", `{"type":"output_text","text":"","annotations":[]}`)
	}
	s.text = append(s.text, c.Str...)
	s.scratch = s.itemHead(s.scratch[:0])
	s.scratch = append(s.scratch, `,"content_index":0,"delta":`...)
	s.scratch = append(s.scratch, c.Raw...)
	s.scratch = append(s.scratch, `,"logprobs":[]`...)
	return s.emit(dst, "response.output_text.delta", "", s.scratch)
}

// reasoningDelta streams the backend's reasoning as a reasoning item's
// summary text.
func (s *chatToResponsesStream) reasoningDelta(dst []byte, r gjson.Result) []byte {
	if s.open != blockThinking {
		dst = s.closeItem(dst)
		s.open, s.itemID, s.text = blockThinking, "rs_"+s.id, s.text[:0]
		s.itemJSON = mustJSON(s.itemID)
		dst = s.itemEvent(dst, "response.output_item.added", mustJSON(rsReasoningItem{Type: "reasoning", ID: s.itemID, Summary: []rsSummaryText{}}))
		dst = s.summaryEvent(dst, "response.reasoning_summary_part.added", `,"part":`, []byte(`{"type":"summary_text","text":""}`))
	}
	s.text = append(s.text, r.Str...)
	return s.summaryEvent(dst, "response.reasoning_summary_text.delta", `,"delta":`, []byte(r.Raw))
}

// summaryEvent appends an event of the open reasoning item's summary
// part: its head, then key and value.
func (s *chatToResponsesStream) summaryEvent(dst []byte, typ, key string, value []byte) []byte {
	s.scratch = s.itemHead(s.scratch[:0])
	s.scratch = append(s.scratch, `,"summary_index":0`...)
	s.scratch = append(s.scratch, key...)
	s.scratch = append(s.scratch, value...)
	return s.emit(dst, typ, "", s.scratch)
}

func (s *chatToResponsesStream) toolCall(dst []byte, tc gjson.Result) []byte {
	k := tc.Get("index").Int()
	if s.open != blockTool || s.openTool != k {
		if k < s.tools {
			return s.fail(dst, "The model backend interleaved tool calls, which the gateway cannot translate.")
		}
		dst = s.closeItem(dst)
		s.open, s.openTool, s.tools, s.text = blockTool, k, k+1, s.text[:0]
		s.callID, s.name = tc.Get("id").Str, tc.Get("function.name").Str
		s.itemID = "fc_" + s.callID
		s.itemJSON = mustJSON(s.itemID)
		dst = s.itemEvent(dst, "response.output_item.added", mustJSON(s.callItem("in_progress")))
	}
	if a := tc.Get("function.arguments"); a.Type == gjson.String && a.Str != "" {
		s.text = append(s.text, a.Str...)
		s.scratch = s.itemHead(s.scratch[:0])
		s.scratch = append(s.scratch, `,"delta":`...)
		s.scratch = append(s.scratch, a.Raw...)
		dst = s.emit(dst, "response.function_call_arguments.delta", "", s.scratch)
	}
	return dst
}

func (s *chatToResponsesStream) callItem(status string) rsFunctionCallItem {
	args := ""
	if status == "completed" {
		args = string(s.text)
	}
	return rsFunctionCallItem{Type: "function_call", ID: s.itemID, CallID: s.callID, Name: s.name, Arguments: args, Status: status}
}

// closeItem ends the open output item with its .done events.
func (s *chatToResponsesStream) closeItem(dst []byte) []byte {
	var item []byte
	switch s.open {
	case blockNone:
		return dst
	case blockText:
		text := mustJSON(string(s.text))
		s.scratch = s.itemHead(s.scratch[:0])
		s.scratch = append(s.scratch, `,"content_index":0,"text":`...)
		s.scratch = append(s.scratch, text...)
		s.scratch = append(s.scratch, `,"logprobs":[]`...)
		dst = s.emit(dst, "response.output_text.done", "", s.scratch)
		dst = s.partEvent(dst, "response.content_part.done", `{"type":"output_text","text":`+string(text)+`,"annotations":[]}`)
		item = mustJSON(messageItem(s.itemID, string(s.text), "completed"))
	case blockThinking:
		text := mustJSON(string(s.text))
		dst = s.summaryEvent(dst, "response.reasoning_summary_text.done", `,"text":`, text)
		dst = s.summaryEvent(dst, "response.reasoning_summary_part.done", `,"part":`, []byte(`{"type":"summary_text","text":`+string(text)+`}`))
		item = mustJSON(rsReasoningItem{Type: "reasoning", ID: s.itemID, Summary: []rsSummaryText{{Type: "summary_text", Text: string(s.text)}}})
	case blockTool:
		s.scratch = s.itemHead(s.scratch[:0])
		s.scratch = append(s.scratch, `,"name":`...)
		s.scratch = append(s.scratch, mustJSON(s.name)...)
		s.scratch = append(s.scratch, `,"arguments":`...)
		s.scratch = append(s.scratch, mustJSON(string(s.text))...)
		dst = s.emit(dst, "response.function_call_arguments.done", "", s.scratch)
		item = mustJSON(s.callItem("completed"))
	}
	dst = s.itemEvent(dst, "response.output_item.done", item)
	s.items = append(s.items, item)
	s.open = blockNone
	return dst
}

// itemHead appends the item_id and output_index of the open item.
func (s *chatToResponsesStream) itemHead(b []byte) []byte {
	b = append(b, `"item_id":`...)
	b = append(b, s.itemJSON...)
	b = append(b, `,"output_index":`...)
	return strconv.AppendInt(b, int64(len(s.items)), 10)
}

func (s *chatToResponsesStream) itemEvent(dst []byte, typ string, item []byte) []byte {
	head := `"output_index":` + strconv.Itoa(len(s.items)) + `,"item":`
	return s.emit(dst, typ, head, item)
}

func (s *chatToResponsesStream) partEvent(dst []byte, typ, part string) []byte {
	s.scratch = s.itemHead(s.scratch[:0])
	s.scratch = append(s.scratch, `,"content_index":0,"part":`...)
	s.scratch = append(s.scratch, part...)
	return s.emit(dst, typ, "", s.scratch)
}

// emit appends one event: {"type":typ,"sequence_number":n,<a><b>}.
func (s *chatToResponsesStream) emit(dst []byte, typ, a string, b []byte) []byte {
	buf := s.ev[:0]
	buf = append(buf, `{"type":"`...)
	buf = append(buf, typ...)
	buf = append(buf, `","sequence_number":`...)
	buf = strconv.AppendInt(buf, s.seq, 10)
	s.seq++
	if a != "" || len(b) > 0 {
		buf = append(append(append(buf, ','), a...), b...)
	}
	buf = append(buf, '}')
	s.ev = buf
	return sse.AppendEvent(dst, typ, buf)
}

// complete closes the open item and emits response.completed (or
// response.incomplete when the output was cut) with the whole output.
func (s *chatToResponsesStream) complete(dst []byte) []byte {
	dst = s.closeItem(dst)
	s.done = true
	r := s.t.response(s.id, s.model, s.created, "completed")
	r.Status, r.IncompleteDetails = responseStatus(s.finish)
	r.Output = append(r.Output, s.items...)
	r.Usage = s.usage
	typ := "response.completed"
	if r.Status == "incomplete" {
		typ = "response.incomplete"
	}
	return s.emit(dst, typ, `"response":`, mustJSON(r))
}

// fail ends the stream with an error event and response.failed.
func (s *chatToResponsesStream) fail(dst []byte, msg string) []byte {
	s.done = true
	m := string(mustJSON(msg))
	dst = s.emit(dst, "error", `"code":"server_error","message":`+m, []byte(`,"param":null`))
	r := s.t.response(s.id, s.model, s.created, "failed")
	r.Output = append(r.Output, s.items...)
	r.Error = &rsError{Code: "server_error", Message: msg}
	return s.emit(dst, "response.failed", `"response":`, mustJSON(r))
}

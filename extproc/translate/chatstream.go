package translate

import (
	"github.com/tidwall/gjson"

	"github.com/streamgate/streamgate/extproc/sse"
)

// chatStreamIn is the reading side every translator of an OpenAI chat
// completion event stream shares: the framing and how far the stream got.
type chatStreamIn struct {
	dec      sse.Decoder
	started  bool
	done     bool
	finished bool // a finish_reason arrived
}

// chatStreamOut is the writing side of such a translator: one JSON
// event's translation, the end of a complete stream, and a failure (each may set
// done).
type chatStreamOut interface {
	event(dst, data []byte) []byte
	complete(dst []byte) []byte
	fail(dst []byte, msg string) []byte
}

// feed frames chunk and hands each whole event to out, appending what
// out writes to dst. At the end a stream that started and finished is
// completed; any other fails. Nothing is written once done.
func (in *chatStreamIn) feed(out chatStreamOut, dst, chunk []byte, end bool) []byte {
	if in.done {
		return dst
	}
	in.dec.Feed(chunk)
	if end {
		in.dec.Close()
	}
	for {
		ev, ok, err := in.dec.Next()
		if err != nil {
			return out.fail(dst, "The model backend sent an event the gateway cannot frame.")
		}
		if !ok {
			break
		}
		dst = in.event(out, dst, ev.Data)
		if in.done {
			return dst
		}
	}
	if end && !in.done {
		if in.started && in.finished {
			return out.complete(dst)
		}
		dst = out.fail(dst, "The model backend ended the stream before the response was complete.")
	}
	return dst
}

// event reads one event's data: [DONE] ends a started stream; JSON goes to
// out; anything else fails the stream.
func (in *chatStreamIn) event(out chatStreamOut, dst, data []byte) []byte {
	if string(data) == "[DONE]" {
		if !in.started {
			return out.fail(dst, "The model backend ended the stream without a response.")
		}
		return out.complete(dst)
	}
	if !gjson.ValidBytes(data) {
		return out.fail(dst, "The model backend sent an event that is not JSON.")
	}
	return out.event(dst, data)
}

package sse

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ev is a copy of an Event that outlives the Decoder's buffers.
type ev struct{ Type, ID, Data string }

// decodeChunks feeds chunks to a fresh Decoder, then closes it, and returns
// every event (copied) and the first error.
func decodeChunks(max int, chunks ...[]byte) ([]ev, error) {
	d := &Decoder{MaxEventSize: max}
	var out []ev
	drain := func() error {
		for {
			e, ok, err := d.Next()
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			out = append(out, ev{string(e.Type), string(e.ID), string(e.Data)})
		}
	}
	for _, c := range chunks {
		d.Feed(c)
		if err := drain(); err != nil {
			return out, err
		}
	}
	d.Close()
	return out, drain()
}

func TestDecoder(t *testing.T) {
	for name, tc := range map[string]struct {
		in   string
		want []ev
	}{
		"one data event":             {"data: hello\n\n", []ev{{Data: "hello"}}},
		"typed event":                {"event: message_start\ndata: {}\n\n", []ev{{Type: "message_start", Data: "{}"}}},
		"CRLF line ends":             {"event: a\r\ndata: x\r\n\r\n", []ev{{Type: "a", Data: "x"}}},
		"CR line ends":               {"event: a\rdata: x\r\r", []ev{{Type: "a", Data: "x"}}},
		"multi-line data":            {"data: a\ndata: b\ndata:c\n\n", []ev{{Data: "a\nb\nc"}}},
		"comments and keep-alives":   {": ping\n\n:\ndata: x\n: mid\n\n", []ev{{Data: "x"}}},
		"only one space is stripped": {"data:  two\n\n", []ev{{Data: " two"}}},
		"empty data dispatches":      {"data:\n\n", []ev{{Data: ""}}},
		"field without colon":        {"data\n\n", []ev{{Data: ""}}},
		"event without data is dropped and its type forgotten": {
			"event: ping\n\ndata: x\n\n", []ev{{Data: "x"}},
		},
		"id persists across events":                            {"id: 7\ndata: a\n\ndata: b\n\n", []ev{{ID: "7", Data: "a"}, {ID: "7", Data: "b"}}},
		"id with NUL is ignored":                               {"id: 1\ndata: a\n\nid: x\x00y\ndata: b\n\n", []ev{{ID: "1", Data: "a"}, {ID: "1", Data: "b"}}},
		"unknown fields and retry":                             {"retry: 10\nfoo: bar\ndata: x\n\n", []ev{{Data: "x"}}},
		"several events":                                       {"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n", []ev{{Data: "1"}, {Data: "2"}, {Data: "[DONE]"}}},
		"last event without blank line is dispatched at Close": {"data: 1\n\ndata: 2", []ev{{Data: "1"}, {Data: "2"}}},
		"type resets between events":                           {"event: a\ndata: 1\n\ndata: 2\n\n", []ev{{Type: "a", Data: "1"}, {Data: "2"}}},
		"blank lines between events":                           {"\n\n\r\ndata: 1\n\n\n\n", []ev{{Data: "1"}}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := decodeChunks(0, []byte(tc.in))
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			// Every split point, and byte by byte, gives the same events.
			for i := range len(tc.in) + 1 {
				split, err := decodeChunks(0, []byte(tc.in[:i]), []byte(tc.in[i:]))
				require.NoError(t, err)
				assert.Equal(t, tc.want, split, "split at %d", i)
			}
			var bytewise [][]byte
			for i := range len(tc.in) {
				bytewise = append(bytewise, []byte{tc.in[i]})
			}
			got, err = decodeChunks(0, bytewise...)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got, "byte by byte")
		})
	}
}

func TestDecoderEventTooLarge(t *testing.T) {
	t.Run("one long line, never terminated", func(t *testing.T) {
		d := &Decoder{MaxEventSize: 64}
		var err error
		for range 10 {
			d.Feed([]byte(strings.Repeat("x", 10)))
			_, _, err = d.Next()
			if err != nil {
				break
			}
		}
		require.ErrorIs(t, err, ErrEventTooLarge)
		_, _, again := d.Next()
		assert.ErrorIs(t, again, ErrEventTooLarge, "the error sticks")
	})
	t.Run("many data lines in one event", func(t *testing.T) {
		_, err := decodeChunks(64, []byte(strings.Repeat("data: 0123456789\n", 10)))
		assert.ErrorIs(t, err, ErrEventTooLarge)
	})
	t.Run("a long stream of small events is fine", func(t *testing.T) {
		d := &Decoder{MaxEventSize: 64}
		for i := range 10000 {
			d.Feed([]byte("data: 0123456789\n\n: keep-alive\n\n"))
			e, ok, err := d.Next()
			require.NoError(t, err, "event %d", i)
			require.True(t, ok)
			require.Equal(t, "0123456789", string(e.Data))
			_, ok, err = d.Next()
			require.NoError(t, err)
			require.False(t, ok)
		}
		assert.LessOrEqual(t, cap(d.buf), 256, "the pending buffer must not grow with the stream")
	})
}

func TestAppendEvent(t *testing.T) {
	assert.Equal(t, "event: ping\ndata: {}\n\n", string(AppendEvent(nil, "ping", []byte("{}"))))
	assert.Equal(t, "data: a\ndata: b\ndata: c\n\n", string(AppendEvent(nil, "", []byte("a\nb\r\nc"))))
	// What AppendEvent writes decodes back to the same event.
	got, err := decodeChunks(0, AppendEvent(nil, "x", []byte("line1\nline2")))
	require.NoError(t, err)
	assert.Equal(t, []ev{{Type: "x", Data: "line1\nline2"}}, got)
}

// FuzzDecoder: no panic; the events never depend on where the stream was
// cut; an event is never larger than the limit.
func FuzzDecoder(f *testing.F) {
	for _, s := range []string{
		"data: x\n\n", "event: a\r\ndata: b\r\n\r\n", "data: a\rdata: b\r\r", ": c\n\ndata\n\n",
		"id: 1\ndata: 2\n\ndata: [DONE]", "data: {\"a\":1}\n\n\n", "\r\n\r\n",
	} {
		f.Add([]byte(s), uint16(3), uint16(64))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut, limit uint16) {
		max := int(limit%512) + 1
		whole, errWhole := decodeChunks(max, in)
		at := int(cut) % (len(in) + 1)
		split, errSplit := decodeChunks(max, in[:at], in[at:])
		if (errWhole == nil) != (errSplit == nil) {
			t.Fatalf("whole err %v, split at %d err %v", errWhole, at, errSplit)
		}
		if errWhole != nil && !errors.Is(errWhole, ErrEventTooLarge) {
			t.Fatalf("unexpected error %v", errWhole)
		}
		assert.Equal(t, whole, split, "split at %d", at)
		for _, e := range whole {
			if len(e.Data)+len(e.Type) > max {
				t.Fatalf("event of %d bytes passed a limit of %d", len(e.Data)+len(e.Type), max)
			}
		}
	})
}

// BenchmarkDecoder reports the cost of framing one chunk holding one
// typical chat.completion.chunk event.
func BenchmarkDecoder(b *testing.B) {
	chunk := []byte(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}]}` + "\n\n")
	d := &Decoder{}
	b.ReportAllocs()
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		d.Feed(chunk)
		if _, ok, err := d.Next(); !ok || err != nil {
			b.Fatal("no event")
		}
		if _, ok, _ := d.Next(); ok {
			b.Fatal("extra event")
		}
	}
}

// BenchmarkDecoderSplit frames events that arrive cut in three chunks.
func BenchmarkDecoderSplit(b *testing.B) {
	ev := []byte("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"tok \"}}\n\n")
	parts := [][]byte{ev[:10], ev[10:60], ev[60:]}
	d := &Decoder{}
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range parts {
			d.Feed(p)
			for {
				_, ok, err := d.Next()
				if err != nil {
					b.Fatal(err)
				}
				if !ok {
					break
				}
			}
		}
	}
}

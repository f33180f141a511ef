package tokens

import (
	"fmt"
	"strings"
	"testing"
)

// largeBody is a non-streamed chat completion whose content makes the body
// about size bytes, usage last as OpenAI sends it. Its content escapes a
// quote every few words (a worst case for the scanner's string skipping).
func largeBody(size int) []byte { return completionBody(size, "tok%d \\\"q\\\" ") }

// plainBody is largeBody with prose-like content: no escapes.
func plainBody(size int) []byte { return completionBody(size, "word%d and some more text, ") }

func completionBody(size int, word string) []byte {
	head := `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m-1","choices":[{"index":0,"message":{"role":"assistant","content":"`
	tail := `"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":34567,"total_tokens":34579}}`
	var b strings.Builder
	b.WriteString(head)
	for i := 0; b.Len() < size-len(tail); i++ {
		fmt.Fprintf(&b, word, i)
	}
	b.WriteString(tail)
	return []byte(b.String())
}

// benchBodyMeter feeds body in 16 KiB chunks (Envoy's STREAMED chunk size
// is at most 64 KiB) and reports allocations per body.
func benchBodyMeter(b *testing.B, body []byte) {
	const chunk = 16 << 10
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var m BodyMeter
		for i := 0; i < len(body); i += chunk {
			m.Feed(body[i:min(i+chunk, len(body))], i+chunk >= len(body))
		}
	}
}

func BenchmarkBodyMeter1MiB(b *testing.B) { benchBodyMeter(b, largeBody(1<<20-1)) }

func BenchmarkBodyMeter4MiB(b *testing.B) { benchBodyMeter(b, largeBody(4<<20)) }

func BenchmarkBodyMeterPlain1MiB(b *testing.B) { benchBodyMeter(b, plainBody(1<<20-1)) }

package extproc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tiktoken-go/tokenizer"
)

// This file builds the wire bytes of streamed responses as real backends
// send them, one event per token, to measure the cut-stream output estimate
// (bytesPerToken) on realistic text: see TestCutStreamEstimateError.

// wirePiece is one token's text as a JSON string's contents (escaped)
// and the tokens it stands for (more than one when a token ends inside a
// UTF-8 sequence: backends hold such bytes back until the character is
// whole).
type wirePiece struct {
	json   string
	tokens int
}

// proseTokens tokenizes the prose under testdata/prose with o200k_base and
// returns it as the pieces a backend streams, documents one after another.
func proseTokens(t testing.TB) []wirePiece {
	t.Helper()
	codec, err := tokenizer.Get(tokenizer.O200kBase)
	if err != nil {
		t.Fatalf("cannot load o200k_base: %v", err)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "prose", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("cannot list testdata/prose: %v (%d files)", err, len(files))
	}
	sort.Strings(files)
	var pieces []wirePiece
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("cannot read %s: %v", f, err)
		}
		_, toks, err := codec.Encode(string(text))
		if err != nil {
			t.Fatalf("cannot encode %s: %v", f, err)
		}
		pending, n := "", 0
		for _, tok := range toks {
			pending, n = pending+tok, n+1
			if utf8.ValidString(pending) {
				q := jsonString(pending)
				pieces = append(pieces, wirePiece{q[1 : len(q)-1], n})
				pending, n = "", 0
			}
		}
	}
	return pieces
}

// wireShape is one backend's stream framing: the bytes before the first
// token (status line, headers, opening events), one token's event, and the
// bytes after the last token (finish, usage and closing events). Every
// event goes out as one HTTP/1.1 chunk, as uvicorn sends what the server
// yields.
type wireShape struct {
	name    string
	headers string
	opening func(r *wireResponse) []string
	token   func(r *wireResponse, quoted string) string
	closing func(r *wireResponse, output int) []string
	// perEvent is how many pieces one event carries (0: one).
	perEvent int
}

// wireResponse is one response's identity, fixed for all its events.
type wireResponse struct {
	id      string
	created int64
	model   string
	input   int
}

// jsonString is s as a JSON string, as Python servers write it (UTF-8 kept,
// no HTML escaping).
func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// httpChunk is the wire bytes of data as one chunk of a chunked HTTP/1.1
// body: its size in hex, CRLF, data, CRLF.
func httpChunk(data string) int { return httpChunkSize(len(data)) }

// httpChunkSize is httpChunk of size bytes of data.
func httpChunkSize(size int) int {
	digits := 1
	for n := size; n >= 16; n /= 16 {
		digits++
	}
	return digits + len("\r\n") + size + len("\r\n")
}

const uvicornHeaders = "HTTP/1.1 200 OK\r\n" +
	"date: Wed, 02 Dec 2026 07:07:53 GMT\r\n" +
	"server: uvicorn\r\n" +
	"content-type: text/event-stream; charset=utf-8\r\n" +
	"x-request-id: 3f2c9a1e7b5d4c6f8a0b1c2d3e4f5a6b\r\n" +
	"transfer-encoding: chunked\r\n\r\n"

// vllmChat is vLLM's /v1/chat/completions stream with include_usage.
var vllmChat = wireShape{
	name:    "vllm-chat",
	headers: uvicornHeaders,
	opening: func(r *wireResponse) []string {
		return []string{r.chunk(`{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`)}
	},
	token: func(r *wireResponse, quoted string) string {
		return r.chunk(`{"content":` + quoted + `},"logprobs":null,"finish_reason":null}]}`)
	},
	closing: func(r *wireResponse, output int) []string {
		return []string{
			r.chunk(`{"content":""},"logprobs":null,"finish_reason":"stop","stop_reason":null}]}`),
			fmt.Sprintf(`data: {"id":%q,"object":"chat.completion.chunk","created":%d,"model":%q,"choices":[],"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d}}`+"\n\n",
				r.id, r.created, r.model, r.input, r.input+output, output),
			"data: [DONE]\n\n",
		}
	},
}

// chunk is a vLLM chat.completion.chunk event with delta and the rest of
// the choice as given.
func (r *wireResponse) chunk(deltaAndRest string) string {
	return fmt.Sprintf(`data: {"id":%q,"object":"chat.completion.chunk","created":%d,"model":%q,"choices":[{"index":0,"delta":%s`+"\n\n",
		r.id, r.created, r.model, deltaAndRest)
}

// sglangChat is SGLang's /v1/chat/completions stream with include_usage:
// every chunk carries null role, reasoning, tool calls and usage.
var sglangChat = wireShape{
	name:    "sglang-chat",
	headers: uvicornHeaders,
	opening: func(r *wireResponse) []string {
		return []string{r.sglang(`{"role":"assistant","content":"","reasoning_content":null,"tool_calls":null}`, "null", "null")}
	},
	token: func(r *wireResponse, quoted string) string {
		return r.sglang(`{"role":null,"content":`+quoted+`,"reasoning_content":null,"tool_calls":null}`, "null", "null")
	},
	closing: func(r *wireResponse, output int) []string {
		return []string{
			r.sglang(`{"role":null,"content":null,"reasoning_content":null,"tool_calls":null}`, `"stop"`, "128009"),
			fmt.Sprintf(`data: {"id":%q,"object":"chat.completion.chunk","created":%d,"model":%q,"choices":[],"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d,"prompt_tokens_details":null}}`+"\n\n",
				r.id, r.created, r.model, r.input, r.input+output, output),
			"data: [DONE]\n\n",
		}
	},
}

func (r *wireResponse) sglang(delta, finish, matched string) string {
	return fmt.Sprintf(`data: {"id":%q,"object":"chat.completion.chunk","created":%d,"model":%q,"choices":[{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s,"matched_stop":%s}],"usage":null}`+"\n\n",
		r.id, r.created, r.model, delta, finish, matched)
}

// messages is an Anthropic-compatible /v1/messages stream (vLLM's), one
// content_block_delta event per token.
var messages = wireShape{
	name:    "anthropic-messages",
	headers: uvicornHeaders,
	opening: func(r *wireResponse) []string {
		return []string{
			fmt.Sprintf("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":%q,\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":%q,\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":%d,\"output_tokens\":0}}}\n\n",
				strings.Replace(r.id, "chatcmpl-", "msg_", 1), r.model, r.input),
			"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
			"event: ping\ndata: {\"type\": \"ping\"}\n\n",
		}
	},
	token: func(_ *wireResponse, quoted string) string {
		return "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":" + quoted + "}}\n\n"
	},
	closing: func(r *wireResponse, output int) []string {
		return []string{
			"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
			fmt.Sprintf("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":%d,\"output_tokens\":%d}}\n\n", r.input, output),
			"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
		}
	},
}

// wireStream is one response's wire bytes, split where a cut can fall.
type wireStream struct {
	head   int   // status line, headers and opening events
	events []int // each token event's bytes
	tokens []int // each token event's tokens
	tail   int   // closing events and the last chunk
	output int   // the usage's output tokens: the text's and the stop token
}

// build lays out pieces as shape streams them.
func (s wireShape) build(rng *rand.Rand, model string, pieces []wirePiece) wireStream {
	r := &wireResponse{
		id:      fmt.Sprintf("chatcmpl-%016x%016x", rng.Uint64(), rng.Uint64()),
		created: 1796000000 + rng.Int64N(1e6),
		model:   model,
		input:   20 + rng.IntN(2000),
	}
	w := wireStream{head: len(s.headers), output: 1}
	for _, ev := range s.opening(r) {
		w.head += httpChunk(ev)
	}
	// A token event is the same bytes around its text each time.
	framing := len(s.token(r, `""`))
	step := max(s.perEvent, 1)
	for i := 0; i < len(pieces); i += step {
		size, n := framing, 0
		for _, p := range pieces[i:min(i+step, len(pieces))] {
			size, n = size+len(p.json), n+p.tokens
		}
		w.events = append(w.events, httpChunkSize(size))
		w.tokens = append(w.tokens, n)
		w.output += n
	}
	for _, ev := range s.closing(r, w.output) {
		w.tail += httpChunk(ev)
	}
	w.tail += len("0\r\n\r\n")
	return w
}

// total is the complete response's wire bytes.
func (w wireStream) total() uint64 {
	n := w.head + w.tail
	for _, e := range w.events {
		n += e
	}
	return uint64(n)
}

// responses builds count responses of 20-800 pieces of prose, from random
// places in pieces, as s streams them.
func (s wireShape) responses(pieces []wirePiece, count int) []wireStream {
	rng := rand.New(rand.NewPCG(16, 1))
	out := make([]wireStream, count)
	for i := range out {
		out[i] = s.build(rng, "meta-llama/Llama-3.1-8B-Instruct", responseSpan(rng, pieces, 20+rng.IntN(781)))
	}
	return out
}

// responseSpan picks a response of n pieces from a random place in pieces.
func responseSpan(rng *rand.Rand, pieces []wirePiece, n int) []wirePiece {
	n = min(n, len(pieces))
	at := rng.IntN(len(pieces) - n + 1)
	return pieces[at : at+n]
}

// vllmBehindProxy is vllmChat through a load balancer that adds its own
// headers (about 600 bytes more): the fixed bytes lean to the head.
var vllmBehindProxy = func() wireShape {
	s := vllmChat
	s.name = "vllm-chat-proxied"
	s.headers = "HTTP/1.1 200 OK\r\n" +
		"date: Wed, 02 Dec 2026 07:07:53 GMT\r\n" +
		"server: uvicorn\r\n" +
		"content-type: text/event-stream; charset=utf-8\r\n" +
		"x-request-id: 3f2c9a1e7b5d4c6f8a0b1c2d3e4f5a6b\r\n" +
		"cache-control: no-cache, no-store, must-revalidate\r\n" +
		"x-accel-buffering: no\r\n" +
		"strict-transport-security: max-age=31536000; includeSubDomains\r\n" +
		"x-content-type-options: nosniff\r\n" +
		"via: 1.1 lb-eu-west-1c.internal (gateway/2.4)\r\n" +
		"x-served-by: gpu-node-a100-17.cluster.local\r\n" +
		"x-upstream-latency-ms: 12\r\n" +
		"set-cookie: AWSALB=Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG9mcmVkcGx1Z2g4Y2hpcmFneG9y; Expires=Wed, 09 Dec 2026 07:07:53 GMT; Path=/\r\n" +
		"set-cookie: AWSALBCORS=Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG9mcmVkcGx1Z2g4Y2hpcmFneG9y; Expires=Wed, 09 Dec 2026 07:07:53 GMT; Path=/; SameSite=None; Secure\r\n" +
		"transfer-encoding: chunked\r\n\r\n"
	return s
}()

// vllmInterval4 is vllmChat served with --stream-interval 4: an event
// carries four tokens' text, so a cut falls every fourth token.
var vllmInterval4 = func() wireShape {
	s := vllmChat
	s.name = "vllm-chat-interval4"
	s.perEvent = 4
	return s
}()

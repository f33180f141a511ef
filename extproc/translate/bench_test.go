package translate

import "testing"

// benchStream reports the steady-state cost of translating one backend
// chunk holding one content delta event: ns/op and allocs/op are per chunk.
func benchStream(b *testing.B, c Client, p Protocol, start, chunk []byte) {
	tr, err := New(c, p, testOptions())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tr.Request([]byte(fuzzRequests[c])); err != nil {
		b.Fatal(err)
	}
	out := tr.Stream(nil, start, false)
	b.ReportAllocs()
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		out = tr.Stream(out[:0], chunk, false)
		if len(out) == 0 {
			b.Fatal("no output")
		}
	}
}

func BenchmarkAnthropicToChatStream(b *testing.B) {
	start := []byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")
	chunk := []byte("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"tok \"}}\n\n")
	benchStream(b, ClientChat, ProtocolAnthropic, start, chunk)
}

func BenchmarkChatToAnthropicStream(b *testing.B) {
	start := []byte(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n")
	chunk := []byte(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":[{"index":0,"delta":{"content":"tok "},"logprobs":null,"finish_reason":null}]}` + "\n\n")
	benchStream(b, ClientMessages, ProtocolOpenAI, start, chunk)
}

func BenchmarkOllamaToChatStream(b *testing.B) {
	start := []byte(`{"model":"llama3.2","created_at":"t","message":{"role":"assistant","content":"a"},"done":false}` + "\n")
	chunk := []byte(`{"model":"llama3.2","created_at":"2024-07-22T20:33:28.123Z","message":{"role":"assistant","content":"tok "},"done":false}` + "\n")
	benchStream(b, ClientChat, ProtocolOllama, start, chunk)
}

func BenchmarkKServeStream(b *testing.B) {
	start := []byte(`data: {"model_name":"llama","model_version":"1","text_output":"a"}` + "\n\n")
	chunk := []byte(`data: {"model_name":"llama","model_version":"1","text_output":"tok "}` + "\n\n")
	benchStream(b, ClientCompletions, ProtocolKServe, start, chunk)
}

func BenchmarkChatToResponsesStream(b *testing.B) {
	start := []byte(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":[{"index":0,"delta":{"role":"assistant","content":"a"},"finish_reason":null}]}` + "\n\n")
	chunk := []byte(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":[{"index":0,"delta":{"content":"tok "},"logprobs":null,"finish_reason":null}]}` + "\n\n")
	benchStream(b, ClientResponses, ProtocolOpenAI, start, chunk)
}

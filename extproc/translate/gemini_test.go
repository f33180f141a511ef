package translate

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func FuzzGeminiToChatStream(f *testing.F) {
	for _, seed := range goldenStreams(f, "openai_gemini") {
		f.Add(seed, uint16(len(seed)/2))
	}
	f.Add([]byte("data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":1,\"args\":[]}}]}}]}\n\n"), uint16(9))
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) { fuzzStream(t, ClientChat, ProtocolGemini, in, cut) })
}

func FuzzGeminiToMessagesStream(f *testing.F) {
	for _, seed := range goldenStreams(f, "anthropic_gemini") {
		f.Add(seed, uint16(len(seed)/2))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) { fuzzStream(t, ClientMessages, ProtocolGemini, in, cut) })
}

func FuzzGeminiResponse(f *testing.F) {
	f.Add(200, []byte(`{"candidates":[{"content":{"parts":[{"text":"a"},{"functionCall":{"name":"f","args":{}}}]},"finishReason":"STOP"}]}`))
	f.Add(400, []byte(`{"error":{"code":400,"message":"m","status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}`))
	f.Add(429, []byte(`[{"error":{"code":429,"message":"m","status":"RESOURCE_EXHAUSTED"}}]`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		for _, c := range []Client{ClientChat, ClientMessages} {
			tr, err := New(c, ProtocolGemini, testOptions())
			require.NoError(t, err)
			_, err = tr.Request([]byte(fuzzRequests[c]))
			require.NoError(t, err)
			st, out := tr.Response(backendStatus(status), body)
			require.NotZero(t, st)
			require.NotEmpty(t, out)
		}
	})
}

func TestGeminiPaths(t *testing.T) {
	p := GeminiPath("gemini-2.5-flash", true)
	require.Equal(t, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", p)
	require.Equal(t, "/v1beta/models/tuned%2Fx:generateContent", GeminiPath("tuned/x", false))
	require.Equal(t, "/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
		VertexPath(p, "my-proj", "us-central1"))
}

func geminiBenchEvents() (start, chunk []byte) {
	start = []byte("data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}],\"role\":\"model\"},\"index\":0}]}\r\n\r\n")
	chunk = []byte("data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"tok \"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":40,\"totalTokenCount\":40}}\r\n\r\n")
	return start, chunk
}

func BenchmarkGeminiToChatStream(b *testing.B) {
	start, chunk := geminiBenchEvents()
	benchStream(b, ClientChat, ProtocolGemini, start, chunk)
}

func BenchmarkGeminiToMessagesStream(b *testing.B) {
	start, chunk := geminiBenchEvents()
	benchStream(b, ClientMessages, ProtocolGemini, start, chunk)
}

func TestVertexPaths(t *testing.T) {
	require.Equal(t, "/v1/projects/my-proj/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict",
		VertexPath(vertexAnthropicPath("claude-sonnet-4-5@20250929", true), "my-proj", "us-east5"))
	require.Equal(t, "/v1/projects/p/locations/global/publishers/anthropic/models/c:rawPredict", VertexPath(vertexAnthropicPath("c", false), "p", "global"))
}

// backendStatus maps a fuzzed int to a status a backend's response can
// have in Envoy's :status (100-599): a translator passes a success status
// on as it came, so 0 or a negative one would come back unchanged.
func backendStatus(n int) int {
	s := n % 600
	if s < 0 {
		s = -s
	}
	if s < 100 {
		s += 100
	}
	return s
}

// FuzzVertexAnthropicResponse: any status and body from Claude on Vertex
// AI gives the client a status and a body, for Chat and Messages clients.
func FuzzVertexAnthropicResponse(f *testing.F) {
	f.Add(200, []byte(`{"type":"message","content":[{"type":"text","text":"a"}],"usage":{"input_tokens":1,"output_tokens":1}}`))
	f.Add(429, []byte(`{"error":{"code":429,"message":"m","status":"RESOURCE_EXHAUSTED"}}`))
	f.Add(529, []byte(`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`))
	f.Add(403, []byte(`[{"error":{"code":403,"message":"m","status":"PERMISSION_DENIED"}}]`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		for _, c := range []Client{ClientChat, ClientMessages} {
			tr, err := New(c, ProtocolAnthropicVertex, testOptions())
			require.NoError(t, err)
			_, err = tr.Request([]byte(fuzzRequests[c]))
			require.NoError(t, err)
			st, out := tr.Response(backendStatus(status), body)
			require.NotZero(t, st)
			require.NotEmpty(t, out)
		}
	})
}

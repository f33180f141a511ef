package translate

import (
	"bytes"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/stretchr/testify/require"
)

// eventStreamFrames encodes a golden file's Bedrock stream, one frame per
// line, with the AWS SDK's encoder: "EVENT JSON" for an event,
// "!exception TYPE JSON" for an exception.
func eventStreamFrames(tb testing.TB, text []byte) []byte {
	var out bytes.Buffer
	enc := eventstream.NewEncoder()
	for _, line := range strings.Split(strings.TrimSpace(string(text)), "\n") {
		name, payload, _ := strings.Cut(line, " ")
		var h eventstream.Headers
		if name == "!exception" {
			name, payload, _ = strings.Cut(payload, " ")
			h.Set(":message-type", eventstream.StringValue("exception"))
			h.Set(":exception-type", eventstream.StringValue(name))
		} else {
			h.Set(":message-type", eventstream.StringValue("event"))
			h.Set(":event-type", eventstream.StringValue(name))
		}
		h.Set(":content-type", eventstream.StringValue("application/json"))
		require.NoError(tb, enc.Encode(&out, eventstream.Message{Headers: h, Payload: []byte(payload)}))
	}
	return out.Bytes()
}

// bedrockStreamSeeds are the golden Bedrock streams as frames.
func bedrockStreamSeeds(tb testing.TB, dir string) [][]byte {
	var out [][]byte
	for _, s := range goldenStreams(tb, dir) {
		out = append(out, eventStreamFrames(tb, s))
	}
	return out
}

func FuzzBedrockToChatStream(f *testing.F) {
	for _, seed := range bedrockStreamSeeds(f, "openai_bedrock") {
		f.Add(seed, uint16(len(seed)/2))
	}
	f.Add([]byte{0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, uint16(3))
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) { fuzzStream(t, ClientChat, ProtocolBedrock, in, cut) })
}

func FuzzBedrockToMessagesStream(f *testing.F) {
	for _, seed := range bedrockStreamSeeds(f, "anthropic_bedrock") {
		f.Add(seed, uint16(len(seed)/2))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) { fuzzStream(t, ClientMessages, ProtocolBedrock, in, cut) })
}

func TestBedrockPathEscapesModelID(t *testing.T) {
	require.Equal(t, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream", bedrockPath("anthropic.claude-3-haiku-20240307-v1:0", true))
	require.Equal(t, "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.x/converse", bedrockPath("arn:aws:bedrock:us-east-1:123:inference-profile/us.x", false))
}

func bedrockBenchFrames(b *testing.B) (start, chunk []byte) {
	start = eventStreamFrames(b, []byte(`messageStart {"role":"assistant"}`+"\n"+`contentBlockDelta {"contentBlockIndex":0,"delta":{"text":"a"}}`))
	chunk = eventStreamFrames(b, []byte(`contentBlockDelta {"contentBlockIndex":0,"delta":{"text":"tok "},"p":"abcdefghij"}`))
	return start, chunk
}

func BenchmarkBedrockToChatStream(b *testing.B) {
	start, chunk := bedrockBenchFrames(b)
	benchStream(b, ClientChat, ProtocolBedrock, start, chunk)
}

func BenchmarkBedrockToMessagesStream(b *testing.B) {
	start, chunk := bedrockBenchFrames(b)
	benchStream(b, ClientMessages, ProtocolBedrock, start, chunk)
}

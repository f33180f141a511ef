package translate

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

// invokeEvents is a Claude stream with a tool use, as Anthropic sends it
// and InvokeModelWithResponseStream carries it (one event a frame).
var invokeEvents = []string{
	`{"type":"message_start","message":{"id":"msg_bdrk_01","type":"message","role":"assistant","model":"claude-3-haiku-20240307","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}`,
	`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
	`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking."}}`,
	`{"type":"content_block_stop","index":0}`,
	`{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_bdrk_01","name":"get_weather","input":{}}}`,
	`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}`,
	`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}`,
	`{"type":"content_block_stop","index":1}`,
	`{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":9}}`,
	`{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":12,"outputTokenCount":9,"invocationLatency":511,"firstByteLatency":200}}`,
}

// invokeFrames encodes events as chunk frames; an event starting with
// "!" is an exception frame "!TYPE MESSAGE".
func invokeFrames(tb testing.TB, events []string) []byte {
	var out bytes.Buffer
	enc := eventstream.NewEncoder()
	for _, ev := range events {
		var h eventstream.Headers
		payload := []byte(`{"bytes":"` + base64.StdEncoding.EncodeToString([]byte(ev)) + `"}`)
		if typ, msg, ok := strings.Cut(strings.TrimPrefix(ev, "!"), " "); ok && ev[0] == '!' {
			h.Set(":message-type", eventstream.StringValue("exception"))
			h.Set(":exception-type", eventstream.StringValue(typ))
			payload = []byte(`{"message":"` + msg + `"}`)
		} else {
			h.Set(":message-type", eventstream.StringValue("event"))
			h.Set(":event-type", eventstream.StringValue("chunk"))
		}
		h.Set(":content-type", eventstream.StringValue("application/json"))
		require.NoError(tb, enc.Encode(&out, eventstream.Message{Headers: h, Payload: payload}))
	}
	return out.Bytes()
}

func invokeOptions() Options {
	o := testOptions()
	o.BedrockInvoke = true
	return o
}

func runInvoke(t *testing.T, c Client, req string, in []byte, cut int) []byte {
	t.Helper()
	tr, err := New(c, ProtocolBedrock, invokeOptions())
	require.NoError(t, err)
	_, err = tr.Request([]byte(req))
	require.NoError(t, err)
	out := tr.Stream(nil, in[:cut], false)
	return tr.Stream(out, in[cut:], true)
}

const invokeMessagesRequest = `{"model":"claude","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"Weather in Paris?"}],"tools":[{"name":"get_weather","input_schema":{"type":"object"}}]}`

func TestMessagesToInvokeRequest(t *testing.T) {
	tr, err := New(ClientMessages, ProtocolBedrock, invokeOptions())
	require.NoError(t, err)
	r, err := tr.Request([]byte(invokeMessagesRequest))
	require.NoError(t, err)
	assert.True(t, r.Stream)
	assert.Equal(t, invokePath(testOptions().Model, true), r.Path)
	assert.Equal(t, bedrockAnthropicVersion, gjson.GetBytes(r.Body, "anthropic_version").Str)
	assert.False(t, gjson.GetBytes(r.Body, "model").Exists(), "InvokeModel takes the model in the path")
	assert.False(t, gjson.GetBytes(r.Body, "stream").Exists(), "and the stream in the operation")
	assert.Equal(t, "get_weather", gjson.GetBytes(r.Body, "tools.0.name").Str)
	assert.Equal(t, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke", invokePath("anthropic.claude-3-haiku-20240307-v1:0", false))

	tr, _ = New(ClientChat, ProtocolBedrock, invokeOptions())
	r, err = tr.Request([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}],"n":2}`))
	require.Error(t, err, "Chat features Claude cannot take are refused as for Anthropic")
	assert.ErrorIs(t, err, ErrUnsupported)
	r, err = tr.Request([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(t, err)
	assert.False(t, r.Stream)
	assert.Equal(t, bedrockAnthropicVersion, gjson.GetBytes(r.Body, "anthropic_version").Str)
	assert.Equal(t, "hi", gjson.GetBytes(r.Body, "messages.0.content.0.text").Str)
}

// TestInvokeStream: the Anthropic events pass to a Messages client as
// they were, whatever the chunk boundaries; a Chat client gets chunks
// with the tool call; an exception frame becomes the error event.
func TestInvokeStream(t *testing.T) {
	in := invokeFrames(t, invokeEvents)
	whole := runInvoke(t, ClientMessages, invokeMessagesRequest, in, 0)
	var want strings.Builder
	for _, ev := range invokeEvents {
		want.WriteString("event: " + gjson.Get(ev, "type").Str + "\ndata: " + ev + "\n\n")
	}
	require.Equal(t, want.String(), string(whole))
	for cut := 1; cut < len(in); cut += 7 {
		require.Equal(t, string(whole), string(runInvoke(t, ClientMessages, invokeMessagesRequest, in, cut)), "cut at %d", cut)
	}

	chat := string(runInvoke(t, ClientChat, `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"get_weather"}}]}`, in, len(in)/2))
	assert.Contains(t, chat, `"name":"get_weather"`)
	assert.Contains(t, chat, `"finish_reason":"tool_calls"`)
	assert.Contains(t, chat, `"prompt_tokens":12`)
	assert.True(t, strings.HasSuffix(chat, "data: [DONE]\n\n"), chat)

	cutShort := invokeFrames(t, append(invokeEvents[:3:3], "!throttlingException Too many tokens, please wait."))
	out := string(runInvoke(t, ClientMessages, invokeMessagesRequest, cutShort, 0))
	assert.Contains(t, out, "event: error\ndata: ")
	assert.Contains(t, out, `"rate_limit_error"`)
	assert.Contains(t, string(runInvoke(t, ClientMessages, invokeMessagesRequest, invokeFrames(t, invokeEvents[:4]), 0)), "ended the stream before", "a stream without message_stop is an error")
}

func TestInvokeResponse(t *testing.T) {
	tr, _ := New(ClientMessages, ProtocolBedrock, invokeOptions())
	_, err := tr.Request([]byte(`{"model":"c","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(t, err)
	msg := `{"id":"msg_bdrk_1","type":"message","role":"assistant","model":"claude-3-haiku-20240307","content":[{"type":"text","text":"Hello"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}`
	status, out := tr.Response(200, []byte(msg))
	assert.Equal(t, 200, status)
	assert.Equal(t, msg, string(out), "Claude's message as is")
	status, out = tr.Response(429, []byte(`{"message":"Too many requests, please wait before trying again."}`))
	assert.Equal(t, 429, status)
	assert.Equal(t, "rate_limit_error", gjson.GetBytes(out, "error.type").Str)
	status, _ = tr.Response(403, []byte(`{"message":"The request signature we calculated does not match"}`))
	assert.Equal(t, 502, status)
}

// TestClaudeMessageMustBeJSON: a cloud's Claude answer that is not valid
// JSON is a 502, though gjson finds a "content" array in it (found by
// FuzzVertexAnthropicResponse: `{"content"[` was passed on as a message).
func TestClaudeMessageMustBeJSON(t *testing.T) {
	for p, opts := range map[Protocol]Options{ProtocolBedrock: invokeOptions(), ProtocolAnthropicVertex: testOptions()} {
		tr, err := New(ClientMessages, p, opts)
		require.NoError(t, err)
		_, err = tr.Request([]byte(`{"model":"c","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`))
		require.NoError(t, err)
		for _, body := range []string{`{"content"[`, `{"content":[]`, `{"content":[]}}`} {
			status, out := tr.Response(200, []byte(body))
			assert.Equal(t, 502, status, "%s %s", p, body)
			assert.Equal(t, "api_error", gjson.GetBytes(out, "error.type").Str, "%s %s", p, body)
		}
		status, _ := tr.Response(200, []byte(`{"content":[]}`))
		assert.Equal(t, 200, status, p)
	}
}

func FuzzInvokeToMessagesStream(f *testing.F) {
	seed := invokeFrames(f, invokeEvents)
	f.Add(seed, uint16(len(seed)/2))
	f.Add([]byte{0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, uint16(3))
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		at := int(cut) % (len(in) + 1)
		whole := runInvoke(t, ClientMessages, invokeMessagesRequest, in, 0)
		require.Equal(t, string(whole), string(runInvoke(t, ClientMessages, invokeMessagesRequest, in, at)), "cut at %d", at)
	})
}

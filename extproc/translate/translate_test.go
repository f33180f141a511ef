package translate

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/extproc/sse"
)

func TestNewRefusesUnknownPairs(t *testing.T) {
	for _, tc := range []struct {
		c Client
		p Protocol
	}{{ClientCompletions, ProtocolAnthropic}, {ClientEmbeddings, ProtocolAnthropic}, {ClientMessages, ProtocolOllama}, {ClientChat, ProtocolKServe}} {
		_, err := New(tc.c, tc.p, testOptions())
		assert.ErrorIs(t, err, ErrNoTranslation, "%s → %s", tc.c, tc.p)
		assert.False(t, Supported(tc.c, tc.p))
	}
	assert.True(t, Native(ClientChat, ProtocolOpenAI))
	assert.True(t, Native(ClientMessages, ProtocolAnthropic))
	assert.False(t, Native(ClientMessages, ProtocolOpenAI))
}

func TestRequestErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		c    Client
		p    Protocol
		body string
		kind error
		msg  string
	}{
		"chat: not an object":             {ClientChat, ProtocolAnthropic, `[]`, ErrInvalid, "JSON object"},
		"chat: wrong field type":          {ClientChat, ProtocolAnthropic, `{"model":"m","messages":"hi"}`, ErrInvalid, `"messages"`},
		"chat: no turns":                  {ClientChat, ProtocolAnthropic, `{"model":"m","messages":[{"role":"system","content":"x"}]}`, ErrInvalid, "at least one"},
		"chat: tool args not an object":   {ClientChat, ProtocolAnthropic, `{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`, ErrInvalid, "arguments"},
		"chat: logprobs":                  {ClientChat, ProtocolAnthropic, `{"model":"m","logprobs":true,"messages":[{"role":"user","content":"x"}]}`, ErrUnsupported, `"logprobs"`},
		"chat: json mode":                 {ClientChat, ProtocolAnthropic, `{"model":"m","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"x"}]}`, ErrUnsupported, `"response_format"`},
		"chat: budget above max_tokens":   {ClientChat, ProtocolAnthropic, `{"model":"m","max_tokens":100,"reasoning_effort":"high","messages":[{"role":"user","content":"x"}]}`, ErrUnsupported, "below max_tokens"},
		"chat: message name":              {ClientChat, ProtocolAnthropic, `{"model":"m","messages":[{"role":"user","name":"bob","content":"x"}]}`, ErrUnsupported, "name"},
		"chat: image in system":           {ClientChat, ProtocolAnthropic, `{"model":"m","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x"}}]},{"role":"user","content":"x"}]}`, ErrUnsupported, "only hold text"},
		"chat: file URL image":            {ClientChat, ProtocolAnthropic, `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"file:///etc/passwd"}}]}]}`, ErrInvalid, "data URL"},
		"chat: tool message without id":   {ClientChat, ProtocolAnthropic, `{"model":"m","messages":[{"role":"tool","content":"x"}]}`, ErrInvalid, "tool_call_id"},
		"messages: unknown field":         {ClientMessages, ProtocolOpenAI, `{"model":"m","max_tokens":5,"container":"c","messages":[{"role":"user","content":"x"}]}`, ErrUnsupported, `"container"`},
		"messages: bad role":              {ClientMessages, ProtocolOpenAI, `{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]}`, ErrInvalid, "role"},
		"messages: tool_use in user turn": {ClientMessages, ProtocolOpenAI, `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_use","id":"a","name":"f","input":{}}]}]}`, ErrUnsupported, "tool_use"},
		"messages: zero max_tokens":       {ClientMessages, ProtocolOpenAI, `{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}`, ErrInvalid, "max_tokens"},
		"messages: bad tool_choice":       {ClientMessages, ProtocolOpenAI, `{"model":"m","max_tokens":5,"tool_choice":{"type":"maybe"},"messages":[{"role":"user","content":"x"}]}`, ErrInvalid, "tool_choice"},
		"messages: file image source":     {ClientMessages, ProtocolOpenAI, `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}`, ErrUnsupported, "source"},
	} {
		t.Run(name, func(t *testing.T) {
			tr, err := New(tc.c, tc.p, testOptions())
			require.NoError(t, err)
			_, err = tr.Request([]byte(tc.body))
			require.ErrorIs(t, err, tc.kind)
			var re *RequestError
			require.True(t, errors.As(err, &re))
			assert.Contains(t, re.Msg, tc.msg)
		})
	}
}

func TestMaxTokensDefaultIsRequired(t *testing.T) {
	tr, err := New(ClientChat, ProtocolAnthropic, Options{Model: "m"})
	require.NoError(t, err)
	_, err = tr.Request([]byte(`{"model":"m","messages":[{"role":"user","content":"x"}]}`))
	assert.ErrorIs(t, err, ErrInvalid, "without a configured default, max_tokens must come from the client")
}

func TestUnparseableSuccessIsBadGateway(t *testing.T) {
	for _, p := range []struct {
		c Client
		p Protocol
	}{{ClientChat, ProtocolAnthropic}, {ClientMessages, ProtocolOpenAI}} {
		tr, err := New(p.c, p.p, testOptions())
		require.NoError(t, err)
		status, body := tr.Response(200, []byte(`<html>oops</html>`))
		assert.Equal(t, 502, status)
		assert.True(t, json.Valid(body))
		assert.NotContains(t, string(body), "oops", "backend bytes must not leak into the error")
	}
}

// fuzzRequests are the client requests the stream fuzzers start from.
var fuzzRequests = map[Client]string{
	ClientChat:        `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}`,
	ClientMessages:    `{"model":"m","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"x"}]}`,
	ClientCompletions: `{"model":"m","stream":true,"prompt":"x"}`,
	ClientResponses:   `{"model":"m","stream":true,"input":"x"}`,
}

// fuzzStream checks one translator against arbitrary backend bytes: no
// panic, the same output however the input is cut, and output made of
// well-formed events whose data is JSON (or [DONE]).
func fuzzStream(t *testing.T, c Client, p Protocol, in []byte, cut uint16) {
	run := func(chunks ...[]byte) []byte {
		tr, err := New(c, p, testOptions())
		require.NoError(t, err)
		_, err = tr.Request([]byte(fuzzRequests[c]))
		require.NoError(t, err)
		var out []byte
		for i, ch := range chunks {
			out = tr.Stream(out, ch, i == len(chunks)-1)
		}
		return out
	}
	whole := run(in)
	at := int(cut) % (len(in) + 1)
	require.Equal(t, string(whole), string(run(in[:at], in[at:])), "cut at %d", at)
	d := &sse.Decoder{}
	d.Feed(whole)
	d.Close()
	events := 0
	for {
		ev, ok, err := d.Next()
		require.NoError(t, err)
		if !ok {
			break
		}
		events++
		if string(ev.Data) != "[DONE]" && !json.Valid(ev.Data) {
			t.Fatalf("event data is not JSON: %q", ev.Data)
		}
	}
	require.Positive(t, events, "every stream ends in at least one event (the end or an error)")
}

func FuzzAnthropicToChatStream(f *testing.F) {
	for _, seed := range goldenStreams(f, "openai_anthropic") {
		f.Add(seed, uint16(len(seed)/2))
	}
	f.Add([]byte("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":99,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"x\"}}\n\n"), uint16(3))
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) { fuzzStream(t, ClientChat, ProtocolAnthropic, in, cut) })
}

func FuzzChatToAnthropicStream(f *testing.F) {
	for _, seed := range goldenStreams(f, "anthropic_openai") {
		f.Add(seed, uint16(len(seed)/2))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) { fuzzStream(t, ClientMessages, ProtocolOpenAI, in, cut) })
}

// FuzzRequest: no panic on any client body for any pair; a translated
// body is JSON; a refusal is a RequestError.
func FuzzRequest(f *testing.F) {
	dirs := make([]string, 0, len(pairs))
	for dir := range pairs {
		dirs = append(dirs, dir)
	}
	slices.Sort(dirs)
	for i, dir := range dirs {
		for _, r := range goldenSections(f, dir, "client_request.json") {
			f.Add(r, uint8(i))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, pair uint8) {
		p := pairs[dirs[int(pair)%len(dirs)]]
		tr, err := New(p.client, p.backend, testOptions())
		require.NoError(t, err)
		req, err := tr.Request(body)
		if err != nil {
			var re *RequestError
			require.True(t, errors.As(err, &re), "refusals must be RequestErrors: %v", err)
			return
		}
		require.True(t, json.Valid(req.Body))
		require.NotEmpty(t, req.Path)
	})
}

func goldenSections(tb testing.TB, dir, name string) [][]byte {
	var out [][]byte
	for _, f := range goldenFiles(tb, dir) {
		for _, s := range f.Files {
			if s.Name == name {
				out = append(out, s.Data)
			}
		}
	}
	return out
}

func goldenStreams(tb testing.TB, dir string) [][]byte {
	var out [][]byte
	for _, f := range goldenFiles(tb, dir) {
		stream := false
		for _, s := range f.Files {
			if s.Name == "client_response" && (strings.HasPrefix(string(s.Data), "data:") || strings.HasPrefix(string(s.Data), "event:")) {
				stream = true
			}
		}
		if stream {
			for _, s := range f.Files {
				if s.Name == "backend_response" {
					out = append(out, s.Data)
				}
			}
		}
	}
	return out
}

func FuzzOllamaToChatStream(f *testing.F) {
	for _, seed := range goldenStreams(f, "openai_ollama") {
		f.Add(seed, uint16(len(seed)/3))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) { fuzzStream(t, ClientChat, ProtocolOllama, in, cut) })
}

func FuzzKServeStream(f *testing.F) {
	for _, seed := range goldenStreams(f, "openai_kserve") {
		f.Add(seed, uint16(len(seed)/3))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) { fuzzStream(t, ClientCompletions, ProtocolKServe, in, cut) })
}

func FuzzChatToResponsesStream(f *testing.F) {
	for _, seed := range goldenStreams(f, "responses_openai") {
		f.Add(seed, uint16(len(seed)/2))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) { fuzzStream(t, ClientResponses, ProtocolOpenAI, in, cut) })
}

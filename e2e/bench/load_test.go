package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadEvents(t *testing.T) {
	const role = `data: {"choices":[{"delta":{"role":"assistant","content":""}}]}`
	const tok = `data: {"choices":[{"delta":{"content":"tok0 "}}]}`
	const finish = `data: {"choices":[{"delta":{},"finish_reason":"stop"}]}`
	const usage = `data: {"choices":[],"usage":{"prompt_tokens":3}}`
	for name, tc := range map[string]struct {
		stream  string
		tokens  int
		events  int
		done    bool
		wantErr bool
	}{
		"full stream":      {stream: role + "\n\n" + tok + "\n\n" + tok + "\n\n" + finish + "\n\n" + usage + "\n\ndata: [DONE]\n\n", tokens: 2, events: 5, done: true},
		"crlf":             {stream: tok + "\r\n\r\n" + "data: [DONE]\r\n\r\n", tokens: 1, events: 1, done: true},
		"no final newline": {stream: tok + "\n\ndata: [DONE]", tokens: 1, events: 1, done: true},
		"cut short":        {stream: role + "\n\n" + tok + "\n\n", tokens: 1, events: 2},
		"comments ignored": {stream: ": keep-alive\n\nevent: x\n" + tok + "\n\ndata: [DONE]\n\n", tokens: 1, events: 1, done: true},
		"line too long":    {stream: "data: " + strings.Repeat("x", 40<<10) + "\n\n", wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			tokens, events := 0, 0
			done, err := readEvents(bufio.NewReaderSize(strings.NewReader(tc.stream), 16<<10), func(token bool) {
				events++
				if token {
					tokens++
				}
			})
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.done, done)
			assert.Equal(t, tc.tokens, tokens)
			assert.Equal(t, tc.events, events)
		})
	}
}

func TestCarriesText(t *testing.T) {
	assert.True(t, carriesText([]byte(`{"delta":{"content":"a"}}`)))
	assert.False(t, carriesText([]byte(`{"delta":{"content":""}}`)))
	assert.False(t, carriesText([]byte(`{"delta":{}}`)))
	assert.False(t, carriesText([]byte(`{"delta":{"content":`)))
}

func TestChatBodyAsksForUsageOnlyWhenTold(t *testing.T) {
	for _, n := range []int{1 << 10, 256 << 10} {
		for _, ask := range []bool{true, false} {
			b := chatBody(n, ask)
			assert.Len(t, b, n)
			var req struct {
				Model         string `json:"model"`
				Stream        bool   `json:"stream"`
				StreamOptions *struct {
					IncludeUsage bool `json:"include_usage"`
				} `json:"stream_options"`
				Messages []struct {
					Content string `json:"content"`
				} `json:"messages"`
			}
			require.NoError(t, json.Unmarshal(b, &req), "body of %d bytes", n)
			assert.Equal(t, "bench-model", req.Model)
			assert.True(t, req.Stream)
			require.Len(t, req.Messages, 1)
			if ask {
				require.NotNil(t, req.StreamOptions)
				assert.True(t, req.StreamOptions.IncludeUsage)
			} else {
				assert.Nil(t, req.StreamOptions, "a client that does not ask sends no stream_options")
			}
		}
	}
}

func TestIsUsageChunk(t *testing.T) {
	assert.True(t, isUsageChunk([]byte(`{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}`)))
	assert.False(t, isUsageChunk([]byte(`{"choices":[{"delta":{"content":"a"}}],"usage":null}`)))
	assert.False(t, isUsageChunk([]byte(`{"choices":[{"delta":{},"finish_reason":"stop"}]}`)))
}

func TestSizeName(t *testing.T) {
	assert.Equal(t, "1KiB", sizeName(1024))
	assert.Equal(t, "256KiB", sizeName(256<<10))
	assert.Equal(t, "1000B", sizeName(1000))
}

func TestStartOffset(t *testing.T) {
	// 150 ms + 15 x 20 ms = 450 ms per stream, spread over 64 workers.
	assert.Equal(t, time.Duration(0), startOffset(0, 64, Realistic, 16))
	assert.Equal(t, 225*time.Millisecond, startOffset(32, 64, Realistic, 16))
	assert.Less(t, startOffset(63, 64, Realistic, 16), 450*time.Millisecond)
	assert.Equal(t, time.Duration(0), startOffset(63, 64, ZeroDelay, 16))
}

func TestStreamChecksUsageChunkAgainstWhatTheClientAsked(t *testing.T) {
	const tok = "data: {\"choices\":[{\"delta\":{\"content\":\"tok \"}}],\"usage\":null}\n\n"
	const usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n"
	for name, tc := range map[string]struct {
		asks, sendUsage bool
		wantErr         string
	}{
		"asked and got":        {asks: true, sendUsage: true},
		"not asked, none sent": {asks: false, sendUsage: false},
		"asked, none sent":     {asks: true, sendUsage: false, wantErr: "no usage chunk"},
		"not asked, got one":   {asks: false, sendUsage: true, wantErr: "did not ask for"},
	} {
		t.Run(name, func(t *testing.T) {
			var asked bool
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				asked = strings.Contains(string(body), `"include_usage":true`)
				_, _ = io.WriteString(w, tok+tok)
				if tc.sendUsage {
					_, _ = io.WriteString(w, usage)
				}
				_, _ = io.WriteString(w, "data: [DONE]\n\n")
			}))
			defer srv.Close()
			tg := &target{ID: "x", url: srv.URL, AsksUsage: tc.asks}
			spec := &loadSpec{target: tg, point: Point{Mode: ZeroDelay, Concurrency: 1, PromptBytes: 256}, tokens: 2}
			w := &worker{client: srv.Client(), spec: spec, body: chatBody(256, tc.asks), reader: newReader()}
			w.stream(context.Background(), time.Time{})
			assert.Equal(t, tc.asks, asked, "the request asks for usage as its target says")
			if tc.wantErr == "" {
				assert.Zero(t, w.errs, w.errMsgs)
				assert.Len(t, w.samples, 1)
				return
			}
			require.Equal(t, 1, w.errs)
			assert.Contains(t, w.errMsgs[0], tc.wantErr)
			assert.Empty(t, w.samples)
		})
	}
}

package fakellm_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamgate/streamgate/examples/fakellm"
)

// start serves a fakellm.Server built from opts on a real loopback server.
func start(t *testing.T, opts fakellm.Options) (*fakellm.Server, string) {
	t.Helper()
	s := fakellm.New(opts)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL
}

// post sends body (a string or a value encoded as JSON) to url+path.
func post(t *testing.T, url, path string, body any, headers map[string]string) *http.Response {
	t.Helper()
	data, ok := body.(string)
	if !ok {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatalf("cannot encode request: %v", err)
		}
		data = string(raw)
	}
	req, err := http.NewRequest(http.MethodPost, url+path, strings.NewReader(data))
	if err != nil {
		t.Fatalf("cannot build request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("cannot send request: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// readAll returns the whole response body.
func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("cannot read response body: %v", err)
	}
	return body
}

// events splits an SSE body into its data payloads, checking that every
// event is exactly "data: …\n\n".
func events(t *testing.T, body []byte) []string {
	t.Helper()
	parts := strings.Split(string(body), "\n\n")
	if last := parts[len(parts)-1]; last != "" {
		t.Fatalf("stream does not end with a blank line: trailing %q", last)
	}
	var out []string
	for _, p := range parts[:len(parts)-1] {
		data, ok := strings.CutPrefix(p, "data: ")
		if !ok || strings.Contains(data, "\n") {
			t.Fatalf("malformed event %q", p)
		}
		out = append(out, data)
	}
	return out
}

// asJSON decodes data into a generic JSON value.
func asJSON(t *testing.T, data string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		t.Fatalf("cannot decode %q: %v", data, err)
	}
	return v
}

// checkObjects decodes each of got, checks that they share an id with
// idPrefix and a recent created time, strips both and compares the rest with
// want.
func checkObjects(t *testing.T, got []string, idPrefix string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d objects, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	var id string
	var created float64
	for i := range got {
		obj, ok := asJSON(t, got[i]).(map[string]any)
		if !ok {
			t.Fatalf("object %d is not a JSON object: %s", i, got[i])
		}
		gotID, _ := obj["id"].(string)
		gotCreated, _ := obj["created"].(float64)
		if i == 0 {
			id, created = gotID, gotCreated
		}
		if !strings.HasPrefix(gotID, idPrefix) || gotID != id {
			t.Errorf("object %d id = %q, want prefix %q and same id as object 0 (%q)", i, gotID, idPrefix, id)
		}
		if gotCreated != created || time.Since(time.Unix(int64(gotCreated), 0)) > time.Minute {
			t.Errorf("object %d created = %v, want recent and equal to %v", i, gotCreated, created)
		}
		delete(obj, "id")
		delete(obj, "created")
		if w := asJSON(t, want[i]); !reflect.DeepEqual(any(obj), w) {
			t.Errorf("object %d:\n got %s\nwant %s", i, mustJSON(obj), want[i])
		}
	}
}

// mustJSON encodes v for failure messages.
func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// chatBody returns a chat completion request for model with a 12-character
// user message (3 prompt tokens) and the extra fields merged in.
func chatBody(model string, stream bool, extra map[string]any) map[string]any {
	body := map[string]any{
		"model":    model,
		"messages": []any{map[string]any{"role": "user", "content": "abcdefghijkl"}},
		"stream":   stream,
	}
	for k, v := range extra {
		body[k] = v
	}
	return body
}

func TestChatStreamingChunkSequence(t *testing.T) {
	s, url := start(t, fakellm.Options{Name: "backend-a", Tokens: 3})
	resp := post(t, url, "/v1/chat/completions", chatBody("gpt-x", true, nil), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	for header, want := range map[string]string{
		"Content-Type":             "text/event-stream",
		"Cache-Control":            "no-cache",
		"x-fakellm-backend":        "backend-a",
		"X-Fakellm-Received-Model": "gpt-x",
	} {
		if got := resp.Header.Get(header); got != want {
			t.Errorf("header %s = %q, want %q", header, got, want)
		}
	}
	got := events(t, readAll(t, resp))
	if got[len(got)-1] != "[DONE]" {
		t.Fatalf("last event = %q, want [DONE]", got[len(got)-1])
	}
	const prefix = `{"object":"chat.completion.chunk","model":"gpt-x","choices":[{"index":0,"logprobs":null,`
	checkObjects(t, got[:len(got)-1], "chatcmpl-",
		prefix+`"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
		prefix+`"delta":{"content":"tok0 "},"finish_reason":null}]}`,
		prefix+`"delta":{"content":"tok1 "},"finish_reason":null}]}`,
		prefix+`"delta":{"content":"tok2 "},"finish_reason":null}]}`,
		prefix+`"delta":{},"finish_reason":"stop"}]}`,
	)
	if st := settled(s, func(st fakellm.Stats) bool { return st.Completed == 1 }); st.Requests != 1 || st.Completed != 1 || st.Cancelled != 0 || st.LastModel != "gpt-x" {
		t.Errorf("stats = %+v, want 1 request, 1 completed, last model gpt-x", st)
	}
}

func TestChatStreamingIncludeUsage(t *testing.T) {
	_, url := start(t, fakellm.Options{Tokens: 2})
	body := chatBody("m", true, map[string]any{"stream_options": map[string]any{"include_usage": true}})
	got := events(t, readAll(t, post(t, url, "/v1/chat/completions", body, nil)))
	if got[len(got)-1] != "[DONE]" {
		t.Fatalf("last event = %q, want [DONE]", got[len(got)-1])
	}
	const prefix = `{"object":"chat.completion.chunk","model":"m","usage":null,"choices":[{"index":0,"logprobs":null,`
	checkObjects(t, got[:len(got)-1], "chatcmpl-",
		prefix+`"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
		prefix+`"delta":{"content":"tok0 "},"finish_reason":null}]}`,
		prefix+`"delta":{"content":"tok1 "},"finish_reason":null}]}`,
		prefix+`"delta":{},"finish_reason":"stop"}]}`,
		`{"object":"chat.completion.chunk","model":"m","choices":[],
		  "usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`,
	)
}

func TestChatNonStreaming(t *testing.T) {
	s, url := start(t, fakellm.Options{Name: "backend-b", Tokens: 3})
	body := map[string]any{
		"model": "upstream-model",
		"messages": []any{
			map[string]any{"role": "system", "content": "abcd"},
			map[string]any{"role": "user", "content": []any{
				map[string]any{"type": "text", "text": "efgh"},
				map[string]any{"type": "image_url", "image_url": map[string]any{"url": "https://example.com/x.png"}},
				map[string]any{"type": "text", "text": "ijklmnop"},
			}},
			map[string]any{"role": "assistant", "content": nil},
		},
	}
	resp := post(t, url, "/v1/chat/completions", body, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status = %d, content type %q; want 200 application/json", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if got := resp.Header.Get(fakellm.HeaderBackend); got != "backend-b" {
		t.Errorf("backend header = %q, want backend-b", got)
	}
	checkObjects(t, []string{string(readAll(t, resp))}, "chatcmpl-",
		`{"object":"chat.completion","model":"upstream-model",
		  "choices":[{"index":0,"message":{"role":"assistant","content":"tok0 tok1 tok2 "},"logprobs":null,"finish_reason":"stop"}],
		  "usage":{"prompt_tokens":4,"completion_tokens":3,"total_tokens":7}}`)
	if st := settled(s, func(st fakellm.Stats) bool { return st.Completed == 1 }); st.Completed != 1 || st.LastModel != "upstream-model" {
		t.Errorf("stats = %+v, want 1 completed, last model upstream-model", st)
	}
}

func TestMaxTokensCapping(t *testing.T) {
	_, url := start(t, fakellm.Options{Tokens: 5})
	for _, tc := range []struct {
		name       string
		extra      map[string]any
		wantTokens int
		wantFinish string
	}{
		{"no limit", nil, 5, "stop"},
		{"max_tokens caps", map[string]any{"max_tokens": 2}, 2, "length"},
		{"max_completion_tokens caps", map[string]any{"max_completion_tokens": 3}, 3, "length"},
		{"smallest limit wins", map[string]any{"max_tokens": 4, "max_completion_tokens": 1}, 1, "length"},
		{"limit above length", map[string]any{"max_tokens": 100}, 5, "stop"},
		{"limit equal to length", map[string]any{"max_tokens": 5}, 5, "stop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got struct {
				Choices []struct {
					Message      struct{ Content string }
					FinishReason string `json:"finish_reason"`
				}
				Usage struct {
					CompletionTokens int `json:"completion_tokens"`
				}
			}
			body := readAll(t, post(t, url, "/v1/chat/completions", chatBody("m", false, tc.extra), nil))
			if err := json.Unmarshal(body, &got); err != nil || len(got.Choices) != 1 {
				t.Fatalf("cannot decode response %s: %v", body, err)
			}
			if n := strings.Count(got.Choices[0].Message.Content, "tok"); n != tc.wantTokens || got.Usage.CompletionTokens != tc.wantTokens {
				t.Errorf("content %q (%d tokens), usage %d; want %d tokens", got.Choices[0].Message.Content, n, got.Usage.CompletionTokens, tc.wantTokens)
			}
			if got.Choices[0].FinishReason != tc.wantFinish {
				t.Errorf("finish_reason = %q, want %q", got.Choices[0].FinishReason, tc.wantFinish)
			}

			stream := events(t, readAll(t, post(t, url, "/v1/chat/completions", chatBody("m", true, tc.extra), nil)))
			// role chunk + tokens + finish chunk + [DONE]
			if len(stream) != tc.wantTokens+3 {
				t.Fatalf("streamed %d events, want %d", len(stream), tc.wantTokens+3)
			}
			if finish := stream[len(stream)-2]; !strings.Contains(finish, `"finish_reason":"`+tc.wantFinish+`"`) {
				t.Errorf("finish chunk %s, want finish_reason %q", finish, tc.wantFinish)
			}
		})
	}
	resp := post(t, url, "/v1/chat/completions", chatBody("m", false, map[string]any{"max_tokens": 0}), nil)
	if body := readAll(t, resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"param":"max_tokens"`) {
		t.Errorf("max_tokens 0: status %d body %s, want 400 naming max_tokens", resp.StatusCode, body)
	}
}

func TestConcurrentStreams(t *testing.T) {
	s, url := start(t, fakellm.Options{Tokens: 8, ITL: time.Millisecond})
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			raw, _ := json.Marshal(chatBody("m", i%2 == 0, nil))
			resp, err := http.Post(url+"/v1/chat/completions", "application/json", bytes.NewReader(raw))
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("request %d: status %d, read error %v", i, resp.StatusCode, err)
			}
			if i%2 == 0 && !bytes.HasSuffix(body, []byte("data: [DONE]\n\n")) {
				t.Errorf("stream %d did not end with [DONE]: %q", i, body)
			}
		})
	}
	wg.Wait()
	if st := settled(s, func(st fakellm.Stats) bool { return st.Completed == 32 }); st.Requests != 32 || st.Completed != 32 || st.Cancelled != 0 {
		t.Errorf("stats = %+v, want 32 requests, 32 completed", st)
	}
}

// settled returns the server's stats once done reports true, or after 2 s:
// the server counts a response complete just after its last byte, which a
// client may read first.
func settled(s *fakellm.Server, done func(fakellm.Stats) bool) fakellm.Stats {
	deadline := time.Now().Add(2 * time.Second)
	for {
		st := s.Stats()
		if done(st) || time.Now().After(deadline) {
			return st
		}
		time.Sleep(time.Millisecond)
	}
}

package fakellm_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/streamgate/streamgate/examples/fakellm"
)

// waitCancelled waits for one signal on s.CancelledCh.
func waitCancelled(t *testing.T, s *fakellm.Server) {
	t.Helper()
	select {
	case <-s.CancelledCh():
	case <-time.After(5 * time.Second):
		t.Fatalf("no cancellation seen within 5s; stats %+v", s.Stats())
	}
}

func TestHeaderOverrides(t *testing.T) {
	_, url := start(t, fakellm.Options{Tokens: 16})

	var got struct {
		Choices []struct{ Message struct{ Content string } }
	}
	body := readAll(t, post(t, url, "/v1/chat/completions", chatBody("m", false, nil),
		map[string]string{fakellm.HeaderTokens: "3"}))
	if err := json.Unmarshal(body, &got); err != nil || got.Choices[0].Message.Content != "tok0 tok1 tok2 " {
		t.Errorf("x-fakellm-tokens 3: response %s (%v), want content %q", body, err, "tok0 tok1 tok2 ")
	}

	begin := time.Now()
	readAll(t, post(t, url, "/v1/chat/completions", chatBody("m", false, nil),
		map[string]string{fakellm.HeaderTTFT: "150", fakellm.HeaderTokens: "1"}))
	if elapsed := time.Since(begin); elapsed < 150*time.Millisecond {
		t.Errorf("x-fakellm-ttft-ms 150: answered after %v", elapsed)
	}

	// With a 40ms inter-token latency the 4 tokens of a stream arrive at
	// least 40ms apart.
	resp := post(t, url, "/v1/chat/completions", chatBody("m", true, nil),
		map[string]string{fakellm.HeaderITL: "40", fakellm.HeaderTokens: "4"})
	reader := bufio.NewReader(resp.Body)
	var arrivals []time.Time
	for {
		line, err := reader.ReadString('\n')
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("cannot read stream: %v", err)
		}
		if strings.Contains(line, `"content":"tok`) {
			arrivals = append(arrivals, time.Now())
		}
	}
	if len(arrivals) != 4 {
		t.Fatalf("got %d token events, want 4", len(arrivals))
	}
	for i := 1; i < len(arrivals); i++ {
		if gap := arrivals[i].Sub(arrivals[i-1]); gap < 30*time.Millisecond {
			t.Errorf("token %d arrived %v after token %d, want about 40ms", i, gap, i-1)
		}
	}

	for header, value := range map[string]string{
		fakellm.HeaderTokens: "many", fakellm.HeaderITL: "-1", fakellm.HeaderFail: "sometimes",
	} {
		resp := post(t, url, "/v1/chat/completions", chatBody("m", false, nil), map[string]string{header: value})
		if body := readAll(t, resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), header) {
			t.Errorf("%s: %q: status %d body %s, want 400 naming the header", header, value, resp.StatusCode, body)
		}
	}
}

func TestOptionsDelays(t *testing.T) {
	_, url := start(t, fakellm.Options{TTFT: 100 * time.Millisecond, ITL: 20 * time.Millisecond, Tokens: 4})
	begin := time.Now()
	readAll(t, post(t, url, "/v1/chat/completions", chatBody("m", false, nil), nil))
	// Non-streaming responses take the time of the whole generation.
	if elapsed := time.Since(begin); elapsed < 160*time.Millisecond {
		t.Errorf("non-streaming response after %v, want at least TTFT + 3*ITL = 160ms", elapsed)
	}
}

func TestFailureInjection(t *testing.T) {
	s, url := start(t, fakellm.Options{Name: "backend-f"})
	for _, tc := range []struct {
		fail       string
		status     int
		errType    string
		retryAfter string
	}{
		{"429", http.StatusTooManyRequests, "requests", "1"},
		{"500", http.StatusInternalServerError, "server_error", ""},
		{"503", http.StatusServiceUnavailable, "server_error", ""},
	} {
		resp := post(t, url, "/v1/chat/completions", chatBody("m", true, nil), map[string]string{fakellm.HeaderFail: tc.fail})
		if resp.StatusCode != tc.status {
			t.Errorf("fail %s: status = %d, want %d", tc.fail, resp.StatusCode, tc.status)
		}
		if got := resp.Header.Get("Retry-After"); got != tc.retryAfter {
			t.Errorf("fail %s: Retry-After = %q, want %q", tc.fail, got, tc.retryAfter)
		}
		if got := resp.Header.Get(fakellm.HeaderBackend); got != "backend-f" {
			t.Errorf("fail %s: backend header = %q", tc.fail, got)
		}
		var body struct {
			Error map[string]any `json:"error"`
		}
		raw := readAll(t, resp)
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("fail %s: cannot decode error body %s: %v", tc.fail, raw, err)
		}
		if msg, _ := body.Error["message"].(string); msg == "" || body.Error["type"] != tc.errType {
			t.Errorf("fail %s: error %v, want a message and type %q", tc.fail, body.Error, tc.errType)
		}
		if _, ok := body.Error["param"]; !ok {
			t.Errorf("fail %s: error %v has no param member", tc.fail, body.Error)
		}
	}
	if st := s.Stats(); st.Requests != 3 || st.Completed != 0 || st.LastModel != "m" {
		t.Errorf("stats = %+v, want 3 requests recorded and none completed", st)
	}
}

func TestDisconnect(t *testing.T) {
	s, url := start(t, fakellm.Options{})
	req, err := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(`{"model":"dropped"}`))
	if err != nil {
		t.Fatalf("cannot build request: %v", err)
	}
	req.Header.Set(fakellm.HeaderFail, "disconnect")
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got status %d, want the connection closed without a response", resp.StatusCode)
	}
	if st := s.Stats(); st.Requests != 1 || st.LastModel != "dropped" || st.Completed != 0 {
		t.Errorf("stats = %+v, want the request recorded and not completed", st)
	}
}

func TestMidstream(t *testing.T) {
	s, url := start(t, fakellm.Options{Tokens: 6})
	resp := post(t, url, "/v1/chat/completions", chatBody("m", true, nil), map[string]string{fakellm.HeaderFail: "midstream"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Errorf("stream ended cleanly, want a truncated stream")
	}
	text := string(body)
	if !strings.Contains(text, `"content":"tok2 "`) || strings.Contains(text, "tok3") {
		t.Errorf("stream %q, want tokens 0-2 only", text)
	}
	if strings.Contains(text, "[DONE]") || strings.Contains(text, "finish_reason\":\"") {
		t.Errorf("stream %q has an end, want it cut", text)
	}

	resp = post(t, url, "/v1/chat/completions", chatBody("m", false, nil), map[string]string{fakellm.HeaderFail: "midstream"})
	if body, err := io.ReadAll(resp.Body); err == nil || json.Valid(body) {
		t.Errorf("non-streaming midstream: read error %v, body %q; want a truncated body", err, body)
	}
	if st := s.Stats(); st.Requests != 2 || st.Completed != 0 || st.Cancelled != 0 {
		t.Errorf("stats = %+v, want 2 requests, none completed or cancelled", st)
	}
}

func TestCancellationMidStream(t *testing.T) {
	s, url := start(t, fakellm.Options{Tokens: 1000, ITL: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatalf("cannot build request: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("cannot send request: %v", err)
	}
	defer resp.Body.Close()
	reader := bufio.NewReader(resp.Body)
	for {
		line, err := reader.ReadString('\n')
		if err != nil {
			t.Fatalf("cannot read stream: %v", err)
		}
		if strings.Contains(line, "tok1 ") {
			break
		}
	}
	cancel()
	waitCancelled(t, s)
	if st := s.Stats(); st.Cancelled != 1 || st.Completed != 0 || st.Requests != 1 {
		t.Errorf("stats = %+v, want 1 request cancelled and none completed", st)
	}
}

func TestCancellationBeforeFirstToken(t *testing.T) {
	s, url := start(t, fakellm.Options{TTFT: time.Minute})
	for _, stream := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		raw, _ := json.Marshal(chatBody("m", stream, nil))
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", strings.NewReader(string(raw)))
		if err != nil {
			t.Fatalf("cannot build request: %v", err)
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("stream=%v: got status %d before TTFT", stream, resp.StatusCode)
		}
		cancel()
		waitCancelled(t, s)
	}
	if st := s.Stats(); st.Cancelled != 2 || st.Completed != 0 {
		t.Errorf("stats = %+v, want 2 cancelled", st)
	}
}

func TestMalformedRequests(t *testing.T) {
	s, url := start(t, fakellm.Options{Name: "backend-e"})
	const body = `{"model": "m", "messages": [`
	resp := post(t, url, "/v1/chat/completions", body, nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status = %d, want 400", resp.StatusCode)
	}
	var got struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal(readAll(t, resp), &got); err != nil {
		t.Fatalf("cannot decode error body: %v", err)
	}
	if msg, _ := got.Error["message"].(string); msg == "" || len(got.Error) != 4 ||
		got.Error["type"] != "invalid_request_error" || got.Error["param"] != nil || got.Error["code"] != nil {
		t.Errorf("error = %v, want message, type invalid_request_error, null param and code", got.Error)
	}
	if st := s.Stats(); st.Requests != 1 || st.LastBodyBytes != len(body) || st.Completed != 0 {
		t.Errorf("stats = %+v, want the malformed request recorded", st)
	}

	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/v1/unknown", http.StatusNotFound},
		{http.MethodPost, "/", http.StatusNotFound},
		{http.MethodGet, "/v1/chat/completions", http.StatusMethodNotAllowed},
		{http.MethodPost, "/v1/models", http.StatusMethodNotAllowed},
	} {
		req, _ := http.NewRequest(tc.method, url+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		raw := readAll(t, resp)
		resp.Body.Close()
		want := `{"error":{"message":"Invalid URL (` + tc.method + " " + tc.path + `)","type":"invalid_request_error","param":null,"code":null}}`
		if resp.StatusCode != tc.status || (tc.status == http.StatusNotFound && string(raw) != want) {
			t.Errorf("%s %s: status %d body %s, want %d", tc.method, tc.path, resp.StatusCode, raw, tc.status)
		}
		if !json.Valid(raw) || resp.Header.Get(fakellm.HeaderBackend) != "backend-e" {
			t.Errorf("%s %s: body %s, backend %q; want JSON from backend-e", tc.method, tc.path, raw, resp.Header.Get(fakellm.HeaderBackend))
		}
	}
}

func TestHangStallMalformed(t *testing.T) {
	s, url := start(t, fakellm.Options{Tokens: 6})
	hang := func(fail string) []byte {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		raw, _ := json.Marshal(chatBody("m", true, nil))
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", bytes.NewReader(raw))
		req.Header.Set(fakellm.HeaderFail, fail)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return body
	}
	if body := hang("hang"); body != nil {
		t.Errorf("hang answered %q, want no response before the client left", body)
	}
	body := string(hang("stall"))
	if !strings.Contains(body, `"content":"tok2 "`) || strings.Contains(body, "tok3") || strings.Contains(body, "[DONE]") {
		t.Errorf("stall sent %q, want tokens 0-2 and then nothing", body)
	}
	resp := post(t, url, "/v1/chat/completions", chatBody("m", true, nil), map[string]string{fakellm.HeaderFail: "malformed"})
	all, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(all)
	if err != nil || !strings.Contains(text, "data: {\"id\":\"chatcmpl-broken\"") || !strings.Contains(text, "tok5") || !strings.Contains(text, "[DONE]") {
		t.Errorf("malformed sent %q (%v), want a cut-off event amid a whole stream", text, err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for s.Stats().Cancelled < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := s.Stats(); st.Cancelled != 2 || st.Completed != 1 {
		t.Errorf("stats = %+v, want the hang and the stall cancelled, the malformed stream completed", st)
	}
}

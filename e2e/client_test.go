package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// chatBody is a minimal chat completion request.
func chatBody(model string, stream bool, prompt string) []byte {
	notePrompt(prompt)
	b, _ := json.Marshal(map[string]any{
		"model":    model,
		"stream":   stream,
		"messages": []map[string]string{{"role": "user", "content": prompt}},
	})
	return b
}

// post sends body to the gateway's path with extra headers.
func post(t *testing.T, ctx context.Context, path string, body []byte, headers map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gw.gateway+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("content-type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}

// sseReader yields the data payloads of an SSE stream one event at a time.
type sseReader struct {
	r *bufio.Reader
}

func newSSEReader(r io.Reader) *sseReader { return &sseReader{r: bufio.NewReader(r)} }

// next returns the next event's data, or io.EOF at the end of the stream.
func (s *sseReader) next() (string, error) {
	var data []string
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			if err == io.EOF && len(data) > 0 {
				return strings.Join(data, "\n"), nil
			}
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if len(data) > 0 {
				return strings.Join(data, "\n"), nil
			}
			continue
		}
		if v, ok := strings.CutPrefix(line, "data:"); ok {
			data = append(data, strings.TrimPrefix(v, " "))
		}
	}
}

type chunk struct {
	Model   string `json:"model"`
	Choices []struct {
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
}

// readStream reads a whole chat stream and returns the content pieces in
// order; it fails unless the stream ends with [DONE].
func readStream(r io.Reader) ([]string, error) {
	sr := newSSEReader(r)
	var pieces []string
	for {
		data, err := sr.next()
		if err != nil {
			return pieces, fmt.Errorf("stream ended without [DONE]: %w", err)
		}
		if data == "[DONE]" {
			return pieces, nil
		}
		var c chunk
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			return pieces, fmt.Errorf("bad chunk %q: %w", data, err)
		}
		for _, ch := range c.Choices {
			if ch.Delta.Content != "" {
				pieces = append(pieces, ch.Delta.Content)
			}
		}
	}
}

func wantTokens(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("tok%d ", i)
	}
	return out
}

// openAIErr is the OpenAI error shape every gateway error must have.
type openAIErr struct {
	Error *struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    string `json:"code"`
	} `json:"error"`
}

func requireOpenAIError(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, status, resp.StatusCode, "body: %s", body)
	require.Contains(t, resp.Header.Get("content-type"), "application/json")
	var e openAIErr
	require.NoError(t, json.Unmarshal(body, &e), "body: %s", body)
	require.NotNil(t, e.Error, "body: %s", body)
	require.NotEmpty(t, e.Error.Message)
	require.NotEmpty(t, e.Error.Type)
	require.Equal(t, code, e.Error.Code)
}

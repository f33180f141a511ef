package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRerank drives POST /v1/rerank (the Cohere/Jina shape vLLM serves)
// through Envoy under auth and limits, against the fakellm rerank fake.
func TestRerank(t *testing.T) {
	g := startRealtimeGateway(t)
	post := func(t *testing.T, key, body string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, g.gateway+"/v1/rerank", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("content-type", "application/json")
		if key != "" {
			req.Header.Set("authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		return resp, buf.Bytes()
	}
	const good = `{"model":"gpt-realtime","query":"red apple","documents":["a green pear","a red apple",{"text":"red wine"}],"top_n":2}`

	t.Run("ranked results from the routed backend, usage reconciled", func(t *testing.T) {
		resp, body := post(t, rtKeyAcme, good)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		var got struct {
			Model string
			Usage struct {
				TotalTokens int `json:"total_tokens"`
			}
			Results []struct {
				Index          int
				RelevanceScore float64 `json:"relevance_score"`
			}
		}
		require.NoError(t, json.Unmarshal(body, &got))
		assert.Equal(t, "fake-realtime-1", got.Model, "the public model name was rewritten upstream")
		require.Len(t, got.Results, 2)
		assert.Equal(t, 1, got.Results[0].Index)
		assert.Equal(t, 1.0, got.Results[0].RelevanceScore)
		assert.Equal(t, 2, got.Results[1].Index)
		assert.Equal(t, 10, got.Usage.TotalTokens)
		// The access log carries the usage the backend reported.
		line := waitLogLine(t, g.env, func(l map[string]any) bool {
			return l["endpoint"] == "/v1/rerank" && l["status"] == 200.0
		})
		assert.Equal(t, 10.0, line["input_tokens"])
		assert.Equal(t, 0.0, line["output_tokens"])
		assert.Equal(t, "gpt-realtime", line["model"])
	})

	t.Run("refusals have the OpenAI shape and never reach the backend", func(t *testing.T) {
		big := `{"model":"gpt-realtime","query":"q","documents":["` + strings.Repeat("word ", 100) + `"]}`
		for name, tc := range map[string]struct {
			key, body string
			status    int
		}{
			"no key":              {"", good, http.StatusUnauthorized},
			"model not allowed":   {rtKeyGuest, good, http.StatusForbidden},
			"missing model":       {rtKeyAcme, `{"query":"q","documents":["d"]}`, http.StatusBadRequest},
			"unknown model":       {rtKeyAcme, `{"model":"nope","query":"q","documents":["d"]}`, http.StatusNotFound},
			"malformed JSON":      {rtKeyAcme, `{"model":`, http.StatusBadRequest},
			"input over the rate": {rtKeySmall, big, http.StatusTooManyRequests},
		} {
			t.Run(name, func(t *testing.T) {
				resp, body := post(t, tc.key, tc.body)
				assert.Equal(t, tc.status, resp.StatusCode, string(body))
				var e struct {
					Error struct{ Message, Type string }
				}
				require.NoError(t, json.Unmarshal(body, &e), string(body))
				assert.NotEmpty(t, e.Error.Message)
			})
		}
	})

	t.Run("no output tokens are reserved: a small rerank fits a 40 tokens/minute tenant", func(t *testing.T) {
		// A generating request would reserve default_output_tokens (1024).
		resp, body := post(t, rtKeySmall, `{"model":"gpt-realtime","query":"red","documents":["red"]}`)
		assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	})

	t.Run("the backend's own 400 passes through", func(t *testing.T) {
		resp, body := post(t, rtKeyAcme, `{"model":"gpt-realtime","query":"q","documents":[]}`)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, string(body))
		waitMetric(t, g.env, "streamgate_reservations_outstanding", 0)
	})
}

// waitLogLine waits for an access log line of e matching match.
func waitLogLine(t *testing.T, e *env, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, s := range strings.Split(e.logs.String(), "\n") {
			var l map[string]any
			if json.Unmarshal([]byte(s), &l) == nil && match(l) {
				return l
			}
		}
		require.True(t, time.Now().Before(deadline), "no matching access log line")
		time.Sleep(50 * time.Millisecond)
	}
}

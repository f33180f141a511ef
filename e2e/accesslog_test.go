package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// accessLine finds the access-log line Envoy wrote for a request id.
func accessLine(t *testing.T, g *env, requestID string) map[string]any {
	t.Helper()
	var found map[string]any
	require.Eventually(t, func() bool {
		for _, line := range strings.Split(g.logs.String(), "\n") {
			if !strings.Contains(line, requestID) || !strings.HasPrefix(line, "{") {
				continue
			}
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["request_id"] == requestID && m["msg"] == nil {
				found = m
				return true
			}
		}
		return false
	}, 5*time.Second, 20*time.Millisecond, "no access log line for %s", requestID)
	return found
}

func TestAccessLog(t *testing.T) {
	const prompt = "a prompt that must never be logged"
	resp := post(t, t.Context(), "/v1/chat/completions", chatBody("model-a", true, prompt), nil)
	_, err := readStream(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	id := resp.Header.Get("x-request-id")
	require.NotEmpty(t, id, "the response names its request id")

	line := accessLine(t, gw, id)
	assert.Equal(t, "/v1/chat/completions", line["endpoint"])
	assert.Equal(t, "model-a", line["model"])
	assert.Equal(t, "upstream-a", line["upstream_model"])
	assert.Equal(t, "backend-a", line["backend"])
	assert.Equal(t, "default", line["version"])
	assert.Equal(t, true, line["stream"])
	assert.EqualValues(t, 200, line["status"])
	assert.Equal(t, "backend-a", line["upstream_cluster"])
	ttfb, ok := line["ttfb_ms"].(float64)
	require.True(t, ok, "ttfb_ms is a number: %v", line["ttfb_ms"])
	assert.GreaterOrEqual(t, line["duration_ms"].(float64), ttfb)

	bad := post(t, t.Context(), "/v1/chat/completions", []byte(`{"model":"nope","messages":[]}`), nil)
	io.Copy(io.Discard, bad.Body)
	bad.Body.Close()
	require.Equal(t, http.StatusNotFound, bad.StatusCode)
	line = accessLine(t, gw, bad.Header.Get("x-request-id"))
	assert.EqualValues(t, 404, line["status"])
	assert.Equal(t, "streamgate_model_not_found", line["details"])
	assert.Equal(t, "other", line["model"], "an unknown model is logged as other: client strings stay out of the log")

	assert.NotContains(t, gw.logs.String(), prompt)
}

package fakegemini

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func post(t *testing.T, url string, headers map[string]string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestFakeChecksWhatGoogleChecks: the API key, alt=sse, an issued bearer,
// the project and location; and it streams CRLF-framed events.
func TestFakeChecksWhatGoogleChecks(t *testing.T) {
	ts := httptest.NewServer(New(Options{APIKey: "k", Project: "p", Location: "l"}))
	defer ts.Close()
	hi := `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`
	key := map[string]string{"x-goog-api-key": "k"}

	st, body := post(t, ts.URL+"/v1beta/models/m:generateContent", map[string]string{"x-goog-api-key": "wrong"}, hi)
	assert.Equal(t, http.StatusBadRequest, st)
	assert.Contains(t, body, "API_KEY_INVALID")
	st, body = post(t, ts.URL+"/v1beta/models/m:streamGenerateContent", key, hi)
	assert.Equal(t, http.StatusBadRequest, st, body)
	st, body = post(t, ts.URL+"/v1beta/models/m:streamGenerateContent?alt=sse", key, hi)
	assert.Equal(t, http.StatusOK, st)
	assert.Equal(t, 2, strings.Count(body, "data: {"), body)
	assert.True(t, strings.HasSuffix(body, "}\r\n\r\n"), body)
	assert.Contains(t, body, `"finishReason": "STOP"`)
	assert.Contains(t, body, `"cachedContentTokenCount": 4`)

	st, body = post(t, ts.URL+"/v1/projects/p/locations/l/publishers/google/models/m:generateContent", map[string]string{"authorization": "Bearer made-up"}, hi)
	assert.Equal(t, http.StatusUnauthorized, st)
	assert.Contains(t, body, "UNAUTHENTICATED")
	st, _ = post(t, ts.URL+"/v1/projects/other/locations/l/publishers/google/models/m:generateContent", nil, hi)
	assert.Equal(t, http.StatusNotFound, st)

	st, body = post(t, ts.URL+"/v1beta/models/m:generateContent", key, `{"contents":[{"role":"user","parts":[{"text":"fake:rate-limit"}]}]}`)
	assert.Equal(t, http.StatusTooManyRequests, st)
	assert.Contains(t, body, `"status": "RESOURCE_EXHAUSTED"`)
	st, body = post(t, ts.URL+"/v1beta/models/m:generateContent", key, `{"contents":[{"role":"assistant","parts":[{"text":"hi"}]}]}`)
	assert.Equal(t, http.StatusBadRequest, st)
	assert.Contains(t, body, "INVALID_ARGUMENT")
}

// TestFakeTokenEndpointRefusesBadAssertions: no assertion, or one signed
// by another key, gets no token.
func TestFakeTokenEndpointRefusesBadAssertions(t *testing.T) {
	_, pub, err := ServiceAccountKey("a@b", "http://x/token")
	require.NoError(t, err)
	ts := httptest.NewServer(New(Options{ClientEmail: "a@b", PublicKey: pub, TokenURL: "http://x/token"}))
	defer ts.Close()
	form := map[string]string{"content-type": "application/x-www-form-urlencoded"}
	st, body := post(t, ts.URL+"/token", form, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=e30.e30.sig")
	assert.Equal(t, http.StatusBadRequest, st)
	assert.Contains(t, body, "invalid_grant")
	st, body = post(t, ts.URL+"/token", form, "grant_type=client_credentials")
	assert.Equal(t, http.StatusBadRequest, st)
	assert.Contains(t, body, "unsupported_grant_type")
}

// TestFakeClaudeOnVertex: the bearer, anthropic_version in the body, no
// model, stream matching the method; Anthropic's SSE with usage.
func TestFakeClaudeOnVertex(t *testing.T) {
	s := New(Options{Project: "p", Location: "l"})
	s.tokens["tok"] = true
	ts := httptest.NewServer(s)
	defer ts.Close()
	base := ts.URL + "/v1/projects/p/locations/l/publishers/anthropic/models/claude-x@1"
	bearer := map[string]string{"authorization": "Bearer tok"}
	ok := `{"anthropic_version":"vertex-2023-10-16","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`

	st, _ := post(t, base+":rawPredict", map[string]string{"authorization": "Bearer other"}, ok)
	assert.Equal(t, http.StatusUnauthorized, st)
	for name, body := range map[string]string{
		"no version":    `{"max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`,
		"header's one":  `{"anthropic_version":"2023-06-01","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`,
		"model in body": `{"model":"claude-x@1","anthropic_version":"vertex-2023-10-16","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`,
		"stream on raw": `{"stream":true,"anthropic_version":"vertex-2023-10-16","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`,
	} {
		st, b := post(t, base+":rawPredict", bearer, body)
		assert.Equal(t, http.StatusBadRequest, st, name)
		assert.Contains(t, b, `"invalid_request_error"`, name)
	}
	st, b := post(t, base+":rawPredict", bearer, ok)
	require.Equal(t, http.StatusOK, st, b)
	assert.Contains(t, b, `"model":"claude-x@1"`)
	assert.Contains(t, b, `"usage":{"input_tokens":25,"output_tokens":12}`)
	st, b = post(t, base+":streamRawPredict", bearer, `{"stream":true,"tools":[{"name":"get_weather","input_schema":{"type":"object"}}],`+ok[1:])
	require.Equal(t, http.StatusOK, st, b)
	assert.True(t, strings.HasPrefix(b, "event: message_start\ndata: {"), b)
	assert.Contains(t, b, `"stop_reason":"tool_use"`)
	assert.True(t, strings.HasSuffix(b, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"))
	st, b = post(t, base+":rawPredict", bearer, `{"anthropic_version":"vertex-2023-10-16","max_tokens":10,"messages":[{"role":"user","content":"fake:rate-limit"}]}`)
	assert.Equal(t, http.StatusTooManyRequests, st)
	assert.Contains(t, b, "RESOURCE_EXHAUSTED")
	assert.Len(t, s.Paths(), 3)
}

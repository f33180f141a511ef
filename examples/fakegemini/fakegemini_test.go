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

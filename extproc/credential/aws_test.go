package credential

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/examples/fakebedrock"
)

const (
	testKey    = "AKIDCREDENTIALTEST"
	testSecret = "dGVzdC1zZWNyZXQ"
)

// testAWS returns a signer reading a shared credentials file with the
// test key (and session token, when set).
func testAWS(t testing.TB, host, token string) *AWS {
	t.Helper()
	dir := t.TempDir()
	creds := "[sg]\naws_access_key_id = " + testKey + "\naws_secret_access_key = " + testSecret + "\n"
	if token != "" {
		creds += "aws_session_token = " + token + "\n"
	}
	cfgFile, credsFile := filepath.Join(dir, "config"), filepath.Join(dir, "credentials")
	require.NoError(t, os.WriteFile(cfgFile, []byte("[profile sg]\nregion = eu-west-1\n"), 0o600))
	require.NoError(t, os.WriteFile(credsFile, []byte(creds), 0o600))
	s, err := NewAWS(context.Background(), &config.AWS{Region: "eu-west-1", Host: host, Profile: "sg", ConfigFiles: []string{cfgFile}, CredentialsFiles: []string{credsFile}})
	require.NoError(t, err)
	return s
}

// send posts body to the fake with the signed headers, Host and path as
// Envoy would send them.
func send(t *testing.T, url, host, path string, body []byte, headers [][2]string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Host = host
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", "10.0.0.1") // unsigned headers Envoy adds do not matter
	for _, h := range headers {
		req.Header.Set(h[0], h[1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// TestAWSSignatureVerifiedBySDK: what Sign returns is accepted by a
// verifier that signs the request again with the AWS SDK's signer, for
// the exact host and escaped path, and refused when host, path or body
// differ from what was signed.
func TestAWSSignatureVerifiedBySDK(t *testing.T) {
	const host = "bedrock-runtime.eu-west-1.amazonaws.com"
	for name, token := range map[string]string{"static": "", "temporary": "FwoGZXIvYXdzEXAMPLETOKEN"} {
		t.Run(name, func(t *testing.T) {
			fake := fakebedrock.New(fakebedrock.Options{Region: "eu-west-1", Keys: map[string]string{testKey: testSecret}, SessionToken: token})
			ts := httptest.NewServer(fake)
			defer ts.Close()
			s := testAWS(t, "", token)
			path := "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
			body := []byte(`{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`)
			h, err := s.Sign(context.Background(), path, body)
			require.NoError(t, err)
			names := map[string]bool{}
			for _, kv := range h {
				names[kv[0]] = true
			}
			assert.True(t, names["authorization"] && names["x-amz-date"] && names["x-amz-content-sha256"])
			assert.Equal(t, token != "", names["x-amz-security-token"])

			assert.Equal(t, http.StatusOK, send(t, ts.URL, host, path, body, h))
			assert.Equal(t, http.StatusForbidden, send(t, ts.URL, "bedrock-runtime.us-east-1.amazonaws.com", path, body, h), "another host")
			assert.Equal(t, http.StatusForbidden, send(t, ts.URL, host, "/model/anthropic.claude-3-haiku-20240307-v1:0/converse", body, h), "the path unescaped")
			assert.Equal(t, http.StatusForbidden, send(t, ts.URL, host, path, append(body, ' '), h), "another body")
			assert.Equal(t, 3, fake.Refused())
		})
	}
}

func TestAWSSignsForConfiguredHost(t *testing.T) {
	fake := fakebedrock.New(fakebedrock.Options{Region: "eu-west-1", Host: "vpce-1.bedrock-runtime.eu-west-1.vpce.amazonaws.com", Keys: map[string]string{testKey: testSecret}})
	ts := httptest.NewServer(fake)
	defer ts.Close()
	s := testAWS(t, "vpce-1.bedrock-runtime.eu-west-1.vpce.amazonaws.com", "")
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`)
	h, err := s.Sign(context.Background(), "/model/m/converse", body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, send(t, ts.URL, "vpce-1.bedrock-runtime.eu-west-1.vpce.amazonaws.com", "/model/m/converse", body, h))
}

func TestAWSNoCredentials(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
	t.Setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "")
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "")
	s, err := NewAWS(context.Background(), &config.AWS{Region: "eu-west-1", ConfigFiles: []string{empty}, CredentialsFiles: []string{empty}})
	require.NoError(t, err)
	_, err = s.Sign(context.Background(), "/model/m/converse", []byte("{}"))
	require.ErrorIs(t, err, ErrUnavailable)
}

// BenchmarkAWSSign measures one request's signing with cached credentials:
// the payload hash over the body, the canonical request and the HMAC chain.
func BenchmarkAWSSign(b *testing.B) {
	s := testAWS(b, "", "")
	s.now = func() time.Time { return time.Unix(1764633600, 0) }
	body := bytes.Repeat([]byte(`{"text":"hello world"},`), 50) // ~1 KiB
	_, err := s.Sign(context.Background(), "/model/m/converse-stream", body)
	require.NoError(b, err)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Sign(context.Background(), "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream", body); err != nil {
			b.Fatal(err)
		}
	}
}

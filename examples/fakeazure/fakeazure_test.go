package fakeazure_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/streamgate/streamgate/examples/fakeazure"
)

func fake(t *testing.T) (*fakeazure.Server, string) {
	s := fakeazure.New(fakeazure.Options{APIKey: "azkey", Deployments: []string{"gpt-4o-prod"}, ClientID: "app", ClientSecret: "shh"})
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL
}

func chat(t *testing.T, opts ...option.RequestOption) (*openai.ChatCompletion, error) {
	c := openai.NewClient(append(opts, option.WithMaxRetries(0))...)
	return c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "gpt-4o-prod", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
}

// TestOfficialAzureClient: openai-go's own Azure client (deployment path,
// api-version, api-key) is served by the fake, and refused as Azure would
// with a wrong key, an unsupported api-version or an unknown deployment.
func TestOfficialAzureClient(t *testing.T) {
	s, base := fake(t)
	resp, err := chat(t, azure.WithEndpoint(base, "2024-10-21"), azure.WithAPIKey("azkey"), azure.WithUnsafeAllowHTTP())
	require.NoError(t, err)
	assert.NotEmpty(t, resp.Choices[0].Message.Content)
	assert.Equal(t, []string{"/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21"}, s.Paths())

	for name, tc := range map[string]struct {
		opts   []option.RequestOption
		status int
	}{
		"wrong key":   {[]option.RequestOption{azure.WithEndpoint(base, "2024-10-21"), azure.WithAPIKey("nope"), azure.WithUnsafeAllowHTTP()}, 401},
		"old version": {[]option.RequestOption{azure.WithEndpoint(base, "2022-12-01"), azure.WithAPIKey("azkey"), azure.WithUnsafeAllowHTTP()}, 404},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := chat(t, tc.opts...)
			var ae *openai.Error
			require.True(t, errors.As(err, &ae), "%v", err)
			assert.Equal(t, tc.status, ae.StatusCode)
		})
	}
}

// TestEntraTokens: tokens from the fake token endpoint by the client
// credentials flow (golang.org/x/oauth2) are accepted as bearers; a wrong
// secret gets no token, an unknown bearer is refused.
func TestEntraTokens(t *testing.T) {
	s, base := fake(t)
	cc := clientcredentials.Config{ClientID: "app", ClientSecret: "shh", TokenURL: base + "/tenant-1/oauth2/v2.0/token", Scopes: []string{"https://cognitiveservices.azure.com/.default"}}
	tok, err := cc.Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, s.TokensIssued())
	assert.Positive(t, tok.Expiry.Unix())

	post := func(bearer string) int {
		req, _ := http.NewRequest(http.MethodPost, base+"/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21",
			strings.NewReader(`{"model":"gpt-4o-prod","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer "+bearer)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusOK, post(tok.AccessToken))
	assert.Equal(t, http.StatusUnauthorized, post("forged"))

	cc.ClientSecret = "wrong"
	_, err = cc.Token(context.Background())
	require.Error(t, err)
	_, err = url.Parse(base)
	require.NoError(t, err)
}

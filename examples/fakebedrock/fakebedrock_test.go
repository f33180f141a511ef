package fakebedrock_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/document"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakebedrock"
)

const model = "anthropic.claude-3-haiku-20240307-v1:0"

// hostRewrite sends the SDK's requests to the fake while keeping the Host
// it signed for, as Envoy's host rewrite does.
type hostRewrite struct{ target *url.URL }

func (h hostRewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if r.Host == "" {
		r.Host = r.URL.Host
	}
	r.URL.Scheme, r.URL.Host = h.target.Scheme, h.target.Host
	return http.DefaultTransport.RoundTrip(r)
}

// client is the official AWS SDK's Bedrock Runtime client aimed at the fake.
func client(t *testing.T, secret string) (*bedrockruntime.Client, *fakebedrock.Server) {
	fake := fakebedrock.New(fakebedrock.Options{Region: "us-west-2", Keys: map[string]string{"AKIDFAKE": "s3cret"}, Models: []string{model}})
	ts := httptest.NewServer(fake)
	t.Cleanup(ts.Close)
	target, _ := url.Parse(ts.URL)
	c := bedrockruntime.New(bedrockruntime.Options{
		Region:           "us-west-2",
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDFAKE", secret, ""),
		HTTPClient:       &http.Client{Transport: hostRewrite{target}},
		RetryMaxAttempts: 1,
	})
	return c, fake
}

func userText(s string) []types.Message {
	return []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: s}}}}
}

// TestSDKConverse: the AWS SDK's own client (its signer, its JSON and
// event-stream decoders) accepts the fake's answers, so the fake speaks
// Bedrock's wire format.
func TestSDKConverse(t *testing.T) {
	c, fake := client(t, "s3cret")
	out, err := c.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(model), Messages: userText("hi")})
	require.NoError(t, err)
	msg := out.Output.(*types.ConverseOutputMemberMessage).Value
	assert.Equal(t, "Echo: hi", msg.Content[0].(*types.ContentBlockMemberText).Value)
	assert.Equal(t, types.StopReasonEndTurn, out.StopReason)
	assert.Positive(t, *out.Usage.InputTokens)
	require.Len(t, fake.Requests(), 1)
	assert.Equal(t, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse", fake.Requests()[0].Path)
}

func TestSDKConverseStreamWithTool(t *testing.T) {
	c, _ := client(t, "s3cret")
	tool := &types.ToolMemberToolSpec{Value: types.ToolSpecification{Name: aws.String("get_weather"),
		InputSchema: &types.ToolInputSchemaMemberJson{Value: document.NewLazyDocument(map[string]any{"type": "object"})}}}
	out, err := c.ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{
		ModelId: aws.String(model), Messages: userText("Weather?"), ToolConfig: &types.ToolConfiguration{Tools: []types.Tool{tool}},
	})
	require.NoError(t, err)
	stream := out.GetStream()
	defer stream.Close()
	var text, input strings.Builder
	var kinds []string
	var stop types.StopReason
	var usage *types.TokenUsage
	for ev := range stream.Events() {
		switch e := ev.(type) {
		case *types.ConverseStreamOutputMemberMessageStart:
			kinds = append(kinds, "messageStart")
		case *types.ConverseStreamOutputMemberContentBlockStart:
			kinds = append(kinds, "contentBlockStart")
			assert.Equal(t, "get_weather", *e.Value.Start.(*types.ContentBlockStartMemberToolUse).Value.Name)
		case *types.ConverseStreamOutputMemberContentBlockDelta:
			switch d := e.Value.Delta.(type) {
			case *types.ContentBlockDeltaMemberText:
				text.WriteString(d.Value)
			case *types.ContentBlockDeltaMemberToolUse:
				input.WriteString(*d.Value.Input)
			}
		case *types.ConverseStreamOutputMemberMessageStop:
			stop = e.Value.StopReason
		case *types.ConverseStreamOutputMemberMetadata:
			usage = e.Value.Usage
		}
	}
	require.NoError(t, stream.Err())
	assert.Equal(t, []string{"messageStart", "contentBlockStart"}, kinds)
	assert.Equal(t, "Echo: Weather?", text.String())
	assert.JSONEq(t, fakebedrock.ToolInput, input.String())
	assert.Equal(t, types.StopReasonToolUse, stop)
	require.NotNil(t, usage)
	assert.Positive(t, *usage.OutputTokens)
}

func TestSDKStreamException(t *testing.T) {
	c, _ := client(t, "s3cret")
	out, err := c.ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{ModelId: aws.String(model), Messages: userText("a fake:stream-throttle")})
	require.NoError(t, err)
	stream := out.GetStream()
	for range stream.Events() {
	}
	var te *types.ThrottlingException
	require.ErrorAs(t, stream.Err(), &te)
}

func TestSDKErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		secret, text, model, code string
	}{
		"bad signature": {"wrong", "hi", model, "InvalidSignatureException"},
		"throttled":     {"s3cret", "fake:throttle", model, "ThrottlingException"},
		"validation":    {"s3cret", "fake:invalid", model, "ValidationException"},
		"unknown model": {"s3cret", "hi", "amazon.nope", "ValidationException"},
	} {
		t.Run(name, func(t *testing.T) {
			c, _ := client(t, tc.secret)
			_, err := c.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(tc.model), Messages: userText(tc.text)})
			var ae smithy.APIError
			require.True(t, errors.As(err, &ae), "%v", err)
			assert.Equal(t, tc.code, ae.ErrorCode())
		})
	}
}

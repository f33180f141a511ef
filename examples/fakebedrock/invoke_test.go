package fakebedrock_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const claudeBody = `{"anthropic_version":"bedrock-2023-05-31","max_tokens":50,"messages":[{"role":"user","content":"Weather in Paris?"}],"tools":[{"name":"get_weather","input_schema":{"type":"object"}}]}`

// TestSDKInvokeModel: the official client's InvokeModel gets Claude's
// message; a body with a model field is refused as Bedrock refuses it.
func TestSDKInvokeModel(t *testing.T) {
	c, fake := client(t, "s3cret")
	out, err := c.InvokeModel(context.Background(), &bedrockruntime.InvokeModelInput{ModelId: aws.String(model), Body: []byte(claudeBody), ContentType: aws.String("application/json")})
	require.NoError(t, err)
	var msg struct {
		Content []struct {
			Type, Text, Name string
			Input            map[string]any
		}
		StopReason string `json:"stop_reason"`
		Usage      struct {
			InputTokens  int `json:"input_tokens"`
			OutputTokens int `json:"output_tokens"`
		}
	}
	require.NoError(t, json.Unmarshal(out.Body, &msg))
	assert.Equal(t, "tool_use", msg.StopReason)
	require.Len(t, msg.Content, 2)
	assert.Equal(t, "Echo: Weather in Paris?", msg.Content[0].Text)
	assert.Equal(t, "get_weather", msg.Content[1].Name)
	assert.Positive(t, msg.Usage.InputTokens)
	assert.Equal(t, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke", fake.Requests()[0].Path)

	_, err = c.InvokeModel(context.Background(), &bedrockruntime.InvokeModelInput{ModelId: aws.String(model),
		Body: []byte(`{"model":"x","anthropic_version":"bedrock-2023-05-31","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`)})
	var ve *types.ValidationException
	require.True(t, errors.As(err, &ve), "%v", err)
	assert.Contains(t, ve.ErrorMessage(), "extraneous key [model]")
}

// TestSDKInvokeModelWithResponseStream: the official client decodes the
// chunk frames into Claude's events, in order.
func TestSDKInvokeModelWithResponseStream(t *testing.T) {
	c, _ := client(t, "s3cret")
	out, err := c.InvokeModelWithResponseStream(context.Background(), &bedrockruntime.InvokeModelWithResponseStreamInput{ModelId: aws.String(model), Body: []byte(claudeBody)})
	require.NoError(t, err)
	defer out.GetStream().Close()
	var kinds []string
	for ev := range out.GetStream().Events() {
		chunk, ok := ev.(*types.ResponseStreamMemberChunk)
		require.True(t, ok, "%T", ev)
		var e struct{ Type string }
		require.NoError(t, json.Unmarshal(chunk.Value.Bytes, &e))
		kinds = append(kinds, e.Type)
	}
	require.NoError(t, out.GetStream().Err())
	require.NotEmpty(t, kinds)
	assert.Equal(t, "message_start", kinds[0])
	assert.Equal(t, "message_stop", kinds[len(kinds)-1])
	assert.Contains(t, kinds, "content_block_start")
}

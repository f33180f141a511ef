package tokens

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestStreamMeterReadsAnthropicEvents(t *testing.T) {
	stream := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-x\",\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"input_tokens\":30,\"output_tokens\":12,\"cache_creation_input_tokens\":7,\"cache_read_input_tokens\":3}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	for cut := range len(stream) + 1 {
		m := &StreamMeter{Anthropic: true}
		out, changed := m.Feed([]byte(stream[:cut]), false)
		assert.Equal(t, stream[:cut], string(out))
		assert.False(t, changed)
		m.Feed([]byte(stream[cut:]), true)
		u, ok := m.Usage()
		assert.True(t, ok, "cut %d", cut)
		assert.Equal(t, Usage{Input: 40, Output: 12}, u, "cut %d: input counts the cached tokens once", cut)
		assert.Equal(t, "claude-x", m.Model())
	}
}

func TestStreamMeterAnthropicUsageOnlyAtStart(t *testing.T) {
	m := &StreamMeter{Anthropic: true}
	m.Feed([]byte("data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n"+
		"data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}\n\n"), true)
	u, ok := m.Usage()
	assert.True(t, ok)
	assert.Equal(t, Usage{Input: 25, Output: 9}, u, "input from message_start stays when message_delta has none")
}

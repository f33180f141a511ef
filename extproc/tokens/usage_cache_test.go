package tokens

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/tidwall/gjson"
)

// TestParseAnthropicUsageCountsCache: a whole Anthropic message's usage
// counts the cached input as the stream meter does.
func TestParseAnthropicUsageCountsCache(t *testing.T) {
	u, ok := ParseResponsesUsage(gjson.Parse(`{"input_tokens":17,"output_tokens":10,"cache_creation_input_tokens":1,"cache_read_input_tokens":4}`))
	assert.True(t, ok)
	assert.Equal(t, Usage{Input: 22, Output: 10}, u)
	u, ok = ParseResponsesUsage(gjson.Parse(`{"input_tokens":17,"output_tokens":10,"input_tokens_details":{"cached_tokens":4}}`))
	assert.True(t, ok)
	assert.Equal(t, Usage{Input: 17, Output: 10}, u, "Responses usage includes its cached tokens already")
}

package extproc

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc/translate"
)

// TestClaudeOnVertexRoute: an anthropic backend with a vertex block is
// Claude on Vertex AI, whose Messages clients are translated (the Vertex
// envelope) and whose responses the gateway therefore reads; a plain
// anthropic backend serves them as they are.
func TestClaudeOnVertexRoute(t *testing.T) {
	cfg, err := config.Parse("vertex.yaml", []byte(`backends:
  - {name: cv, protocol: anthropic, endpoints: ["h:443"], vertex: {project: p, location: us-east5}}
  - {name: c, protocol: anthropic, endpoints: ["h:443"]}
models:
  - {name: vsonnet, backend: cv, upstream_model: "claude-sonnet-4-5@20250929"}
  - {name: sonnet, backend: c}
`))
	require.NoError(t, err)
	r := NewRoutes(cfg, 0)
	v := &r.byModel["vsonnet"].versions[0]
	assert.Equal(t, translate.ProtocolAnthropicVertex, v.wire())
	assert.Equal(t, translate.ProtocolAnthropic, r.byModel["sonnet"].versions[0].wire())
	assert.False(t, translate.Native(translate.ClientMessages, v.wire()))
	assert.True(t, r.translates[translate.ClientMessages], "the Messages responses of Claude on Vertex are read")
	assert.True(t, translatable(&apiEndpoint{client: translate.ClientChat}, v))
}

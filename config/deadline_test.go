package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFirstByteTimeout(t *testing.T) {
	cfg, err := Parse("d.yaml", []byte(`
gateway: {first_byte_timeout: 20s}
backends:
  - {name: a, protocol: openai, endpoints: ["127.0.0.1:1"]}
  - {name: b, protocol: openai, endpoints: ["127.0.0.1:2"], first_byte_timeout: 5s}
models:
  - {name: m, backend: a}
`))
	require.NoError(t, err)
	assert.Equal(t, 20*time.Second, cfg.FirstByteTimeout("a"), "the gateway's default")
	assert.Equal(t, 5*time.Second, cfg.FirstByteTimeout("b"), "the backend's own")
	assert.Equal(t, 20*time.Second, cfg.FirstByteTimeout("missing"))
}

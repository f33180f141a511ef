package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const saturationBase = `backends:
  - name: gpu
    protocol: openai
    endpoints: [10.0.0.1:8000]
    picking:
      saturation:
`

func TestSaturationWaitDefaults(t *testing.T) {
	cfg, err := Parse("s.yaml", []byte(saturationBase+"        queue: 4\n"))
	require.NoError(t, err)
	s := cfg.Backends[0].Picking.Saturation
	assert.Equal(t, DefaultSaturationMaxWaiting, s.MaxWaiting)
	assert.Equal(t, DefaultSaturationMaxWait, s.MaxWait)
}

func TestSaturationWaitAndPriorityInvalid(t *testing.T) {
	for name, tc := range map[string]struct {
		yaml, want string
		line       int
	}{
		"wait past the message timeout": {saturationBase + "        max_wait: 1600ms\n", "at least 500ms below extproc.message_timeout (2s)", 7},
		"negative wait":                 {saturationBase + "        max_wait: -1s\n", "max_wait -1s must be positive", 7},
		"negative queue size":           {saturationBase + "        max_waiting: -1\n", "max_waiting must be 1-1048576", 7},
		"unknown tenant priority": {"backends: [{name: b, protocol: openai, endpoints: [\"127.0.0.1:1\"]}]\nauth:\n  tenants:\n    - name: t\n      models: [\"*\"]\n      priority: urgent\n",
			`tenant "t": priority "urgent" must be critical, standard or sheddable`, 6},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("s.yaml", []byte(tc.yaml))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			require.NotEmpty(t, Problems(err))
			assert.Equal(t, tc.line, Problems(err)[0].Line, "problems are located")
		})
	}
}

func TestSaturationWaitFitsALongerMessageTimeout(t *testing.T) {
	cfg, err := Parse("s.yaml", []byte("extproc: {message_timeout: 5s}\n"+saturationBase+"        max_wait: 4500ms\n"))
	require.NoError(t, err)
	assert.Equal(t, 4500*time.Millisecond, cfg.Backends[0].Picking.Saturation.MaxWait)
}

package fakellm

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSimDecodeStep(t *testing.T) {
	for name, tc := range map[string]struct {
		opts    SimOptions
		running int
		want    time.Duration
	}{
		"defaults, one running":   {SimOptions{}, 1, 11500 * time.Microsecond},
		"defaults, eight running": {SimOptions{}, 8, 22 * time.Millisecond},
		"speed 10":                {SimOptions{Speed: 10}, 8, 2200 * time.Microsecond},
		"slowness 2":              {SimOptions{Slowness: 2}, 8, 44 * time.Millisecond},
		"custom":                  {SimOptions{DecodeBase: time.Millisecond, DecodePerSeq: time.Millisecond}, 4, 5 * time.Millisecond},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := NewSim(tc.opts)
			require.NoError(t, err)
			s.running = tc.running
			assert.Equal(t, tc.want, s.decodeStep())
		})
	}
}

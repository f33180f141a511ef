package picking

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestLoRAScore(t *testing.T) {
	tests := map[string]struct {
		m    Metrics
		want float64
	}{
		"running":              {m: Metrics{RunningLoRA: []string{"x", "a"}, MaxLoRA: 2}, want: loraRunning},
		"waiting":              {m: Metrics{RunningLoRA: []string{"x"}, WaitingLoRA: []string{"a"}, MaxLoRA: 1}, want: loraWaiting},
		"free slot":            {m: Metrics{RunningLoRA: []string{"x"}, MaxLoRA: 2}, want: loraLoadable},
		"no free slot":         {m: Metrics{RunningLoRA: []string{"x", "y"}, MaxLoRA: 2}},
		"max unknown":          {m: Metrics{RunningLoRA: []string{"x"}}},
		"no adapters reported": {},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			assert.InDelta(t, tc.want, loraScore(&tc.m, "a"), 0)
		})
	}
	assert.Greater(t, loraRunning, loraWaiting)
	assert.Greater(t, loraWaiting, loraLoadable)
}

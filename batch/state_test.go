package batch

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStatusTransitions(t *testing.T) {
	for name, tc := range map[string]struct {
		path []Status
		bad  Status
	}{
		"completed": {path: []Status{InProgress, Finalizing, Completed}, bad: InProgress},
		"failed":    {path: []Status{Failed}, bad: InProgress},
		"cancelled": {path: []Status{InProgress, Cancelling, Cancelled}, bad: Completed},
		"expired":   {path: []Status{InProgress, Expired}, bad: Cancelling},
	} {
		t.Run(name, func(t *testing.T) {
			b := &Batch{Status: Validating}
			for i, s := range tc.path {
				require.NoError(t, b.moveTo(s, int64(i+1)))
			}
			assert.True(t, b.Status.Terminal())
			assert.Error(t, b.moveTo(tc.bad, 9))
		})
	}
	b := &Batch{Status: Validating}
	require.NoError(t, b.moveTo(InProgress, 5))
	assert.Equal(t, int64(5), *b.InProgressAt)
	assert.Error(t, b.moveTo(Completed, 6), "in_progress cannot skip finalizing")
}

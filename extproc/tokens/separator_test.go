package tokens

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestStreamMeterFirstSeparatorWins: the earlier blank line ends an event,
// whichever line ending it uses. Taking a later LF LF over an earlier
// CRLF CRLF would merge the content event with the usage-only one after it
// and strip both.
func TestStreamMeterFirstSeparatorWins(t *testing.T) {
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	for name, tc := range map[string]struct{ in, want string }{
		"CRLF then LF": {crlf(evA) + evUsage + evDone, crlf(evA) + evDone},
		"LF then CRLF": {evA + crlf(evUsage) + evDone, evA + evDone},
	} {
		t.Run(name, func(t *testing.T) {
			m := &StreamMeter{Strip: true}
			got, _ := m.Feed([]byte(tc.in), true)
			assert.Equal(t, tc.want, string(got), "only the usage-only event is stripped")
			u, ok := m.Usage()
			assert.True(t, ok)
			assert.Equal(t, Usage{Input: 11, Output: 7}, u)
		})
	}
}

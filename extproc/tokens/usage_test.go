package tokens

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	evA     = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"abcd\"}}]}\n\n"
	evB     = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"efgh1234\"},\"finish_reason\":\"stop\"}]}\n\n"
	evUsage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7,\"total_tokens\":18}}\n\n"
	evDone  = "data: [DONE]\n\n"
)

// feedSplit feeds s cut at every position in cuts and returns what was forwarded.
func feedSplit(m *StreamMeter, s string, cuts []int) string {
	var out strings.Builder
	prev := 0
	for i, c := range append(cuts, len(s)) {
		got, _ := m.Feed([]byte(s[prev:c]), i == len(cuts))
		out.Write(got)
		prev = c
	}
	return out.String()
}

func TestStreamMeterStripsUsageAtAnySplit(t *testing.T) {
	stream := evA + evB + evUsage + evDone
	want := evA + evB + evDone
	for cut := 0; cut <= len(stream); cut++ {
		for cut2 := cut; cut2 <= len(stream); cut2 += 7 {
			m := &StreamMeter{Strip: true, Counter: &Counter{charsPerToken: 4}}
			got := feedSplit(m, stream, []int{cut, cut2})
			require.Equal(t, want, got, "cuts at %d and %d", cut, cut2)
			u, ok := m.Usage()
			require.True(t, ok)
			assert.Equal(t, Usage{Input: 11, Output: 7}, u)
			assert.Equal(t, int64(3), m.Counted(), "abcd and efgh1234 at 4 bytes per token")
		}
	}
}

func TestStreamMeterObservesWithoutChanging(t *testing.T) {
	stream := evA + evUsage + evDone
	m := &StreamMeter{}
	for i := 0; i < len(stream); i += 5 {
		chunk := []byte(stream[i:min(i+5, len(stream))])
		got, changed := m.Feed(chunk, i+5 >= len(stream))
		assert.False(t, changed)
		assert.Equal(t, &chunk[0], &got[0], "the same bytes are forwarded")
	}
	u, ok := m.Usage()
	require.True(t, ok)
	assert.Equal(t, int64(7), u.Output)
}

func TestStreamMeterWholeEventsPassUntouched(t *testing.T) {
	m := &StreamMeter{Strip: true}
	chunk := []byte(evA + evB)
	got, changed := m.Feed(chunk, false)
	assert.False(t, changed)
	assert.Equal(t, string(chunk), string(got))
}

func TestStreamMeterCRLF(t *testing.T) {
	m := &StreamMeter{Strip: true}
	s := strings.ReplaceAll(evA+evUsage+evDone, "\n", "\r\n")
	got := feedSplit(m, s, []int{10})
	assert.Equal(t, strings.ReplaceAll(evA+evDone, "\n", "\r\n"), got)
	_, ok := m.Usage()
	assert.True(t, ok)
}

func TestStreamMeterWithoutUsageCounts(t *testing.T) {
	m := &StreamMeter{Counter: &Counter{charsPerToken: 1}}
	feedSplit(m, evA+evB+evDone, []int{3})
	_, ok := m.Usage()
	assert.False(t, ok)
	assert.Equal(t, int64(12), m.Counted())
}

func FuzzStreamMeter(f *testing.F) {
	f.Add([]byte(evA+evUsage+evDone), 3)
	f.Add([]byte("data: {\"usage\":{\"prompt_tokens\":1}}\r\n\r\n"), 0)
	f.Fuzz(func(t *testing.T, data []byte, cut int) {
		if cut < 0 || cut > len(data) {
			cut = len(data) / 2
		}
		m := &StreamMeter{Strip: true, Counter: &Counter{charsPerToken: 4}}
		a, _ := m.Feed(data[:cut], false)
		b, _ := m.Feed(data[cut:], true)
		if len(a)+len(b) > len(data) {
			t.Fatalf("forwarded %d bytes of %d", len(a)+len(b), len(data))
		}
		o := &StreamMeter{}
		x, _ := o.Feed(data[:cut], false)
		y, _ := o.Feed(data[cut:], true)
		if string(x)+string(y) != string(data) {
			t.Fatal("an observing meter changed the stream")
		}
	})
}

func BenchmarkStreamMeterChunk(b *testing.B) {
	chunk := []byte(evA)
	m := &StreamMeter{Strip: true, Counter: &Counter{charsPerToken: 4}}
	b.ReportAllocs()
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		m.Feed(chunk, false)
	}
}

// TestStreamMeterRemovesNullUsage: once the gateway turned include_usage on,
// the backend marks every chunk "usage":null; the client, who did not ask
// for usage, gets the chunks without that field, whatever the splits.
func TestStreamMeterRemovesNullUsage(t *testing.T) {
	nullA := "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"abcd\"}}],\"usage\":null}\n\n"
	nullB := "data: {\"id\":\"x\",\"usage\":null,\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
	stream := nullA + nullB + evUsage + evDone
	want := "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"abcd\"}}]}\n\n" +
		"data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n" + evDone
	for cut := 0; cut <= len(stream); cut++ {
		m := &StreamMeter{Strip: true}
		require.Equal(t, want, feedSplit(m, stream, []int{cut}), "cut at %d", cut)
		u, ok := m.Usage()
		require.True(t, ok)
		assert.Equal(t, Usage{Input: 11, Output: 7}, u)
	}
	// Without Strip (the client asked for usage) nothing changes.
	m := &StreamMeter{}
	assert.Equal(t, stream, feedSplit(m, stream, []int{10}))
}

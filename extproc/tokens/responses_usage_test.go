package tokens

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const responsesStream = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"r\",\"model\":\"m1\",\"usage\":null}}\n\n" +
	"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"delta\":\"abcd\"}\n\n" +
	"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":2,\"delta\":\"efgh\"}\n\n" +
	"event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":3,\"response\":{\"id\":\"r\",\"model\":\"m1\",\"usage\":{\"input_tokens\":12,\"output_tokens\":5,\"total_tokens\":17}}}\n\n"

func TestStreamMeterReadsResponsesUsageAtAnySplit(t *testing.T) {
	for cut := 0; cut <= len(responsesStream); cut++ {
		m := &StreamMeter{Responses: true, Counter: &Counter{charsPerToken: 4}}
		got := feedSplit(m, responsesStream, []int{cut})
		require.Equal(t, responsesStream, got, "a Responses stream passes untouched")
		u, ok := m.Usage()
		require.True(t, ok, "cut at %d", cut)
		assert.Equal(t, Usage{Input: 12, Output: 5}, u)
		assert.Equal(t, int64(2), m.Counted(), "output deltas counted for the fallback")
		assert.Equal(t, "m1", m.Model())
	}
}

func TestStreamMeterCountsResponsesDeltasWithoutUsage(t *testing.T) {
	m := &StreamMeter{Responses: true, Counter: &Counter{charsPerToken: 4}}
	cut := len(responsesStream) - len("event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":3,\"response\":{\"id\":\"r\",\"model\":\"m1\",\"usage\":{\"input_tokens\":12,\"output_tokens\":5,\"total_tokens\":17}}}\n\n")
	feedSplit(m, responsesStream[:cut], nil)
	_, ok := m.Usage()
	assert.False(t, ok)
	assert.Equal(t, int64(2), m.Counted())
}

func TestBodyMeterReadsResponsesUsage(t *testing.T) {
	body := `{"id":"r","object":"response","model":"m1","output":[],"usage":{"input_tokens":9,"output_tokens":4,"total_tokens":13}}`
	m := &BodyMeter{Responses: true}
	m.Feed([]byte(body), true)
	u, ok := m.Usage()
	require.True(t, ok)
	assert.Equal(t, Usage{Input: 9, Output: 4}, u)

	chat := &BodyMeter{}
	chat.Feed([]byte(body), true)
	_, ok = chat.Usage()
	assert.False(t, ok, "a chat meter does not take Responses usage")
}

// FuzzStreamMeterResponses: a Responses-mode meter never changes the
// stream and reads the same usage however the stream is cut.
func FuzzStreamMeterResponses(f *testing.F) {
	f.Add([]byte(responsesStream), 40)
	f.Add([]byte("data: {\"response\":{\"usage\":{\"input_tokens\":1,\"output_tokens\":2}}}\r\n\r\n"), 5)
	f.Fuzz(func(t *testing.T, data []byte, cut int) {
		if cut < 0 || cut > len(data) {
			cut = len(data) / 2
		}
		whole := &StreamMeter{Responses: true, Counter: &Counter{charsPerToken: 4}}
		whole.Feed(data, true)
		m := &StreamMeter{Responses: true, Counter: &Counter{charsPerToken: 4}}
		a, _ := m.Feed(data[:cut], false)
		b, _ := m.Feed(data[cut:], true)
		if string(a)+string(b) != string(data) {
			t.Fatal("a Responses meter changed the stream")
		}
		u1, ok1 := whole.Usage()
		u2, ok2 := m.Usage()
		if u1 != u2 || ok1 != ok2 || whole.Counted() != m.Counted() {
			t.Fatalf("cut at %d changed what was read: %v %v / %v %v", cut, u1, ok1, u2, ok2)
		}
	})
}

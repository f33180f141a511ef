package tokens

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/tidwall/gjson"
)

func TestParseUsageReadsAudioUsage(t *testing.T) {
	for name, tc := range map[string]struct {
		usage string
		want  Usage
		ok    bool
	}{
		"tokens (gpt-4o-transcribe)": {`{"type":"tokens","input_tokens":14,"input_token_details":{"text_tokens":4,"audio_tokens":10},"output_tokens":45,"total_tokens":59}`, Usage{Input: 14, Output: 45}, true},
		"duration (whisper-1)":       {`{"type":"duration","seconds":9}`, Usage{}, false},
		"tokens without output":      {`{"type":"tokens","input_tokens":14}`, Usage{}, false},
	} {
		t.Run(name, func(t *testing.T) {
			u, ok := ParseUsage(gjson.Parse(tc.usage))
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.want, u)
		})
	}
}

func TestBodyMeterReadsAudioSeconds(t *testing.T) {
	for name, tc := range map[string]struct {
		body    string
		seconds float64
		found   bool
	}{
		"duration":        {`{"text":"hi","usage":{"type":"duration","seconds":9.5}}`, 9.5, false},
		"tokens":          {`{"text":"hi","usage":{"type":"tokens","input_tokens":1,"output_tokens":2}}`, 0, true},
		"negative":        {`{"text":"hi","usage":{"type":"duration","seconds":-1}}`, 0, false},
		"seconds as text": {`{"text":"hi","usage":{"type":"duration","seconds":"9"}}`, 0, false},
		"no usage":        {`{"text":"hi"}`, 0, false},
	} {
		t.Run(name, func(t *testing.T) {
			var m BodyMeter
			m.Feed([]byte(tc.body), true)
			_, found := m.Usage()
			assert.Equal(t, tc.found, found)
			assert.Equal(t, tc.seconds, m.Seconds())
		})
	}
}

// TestStreamMeterReadsTranscriptUsage: a streamed transcription's usage
// comes in its transcript.text.done event, which passes untouched.
func TestStreamMeterReadsTranscriptUsage(t *testing.T) {
	stream := "data: {\"type\":\"transcript.text.delta\",\"delta\":\"Hello\"}\n\n" +
		"data: {\"type\":\"transcript.text.done\",\"text\":\"Hello\",\"usage\":{\"type\":\"tokens\",\"input_tokens\":7,\"output_tokens\":2,\"total_tokens\":9}}\n\n"
	m := &StreamMeter{}
	for i := 0; i < len(stream); i += 10 {
		end := min(i+10, len(stream))
		out, changed := m.Feed([]byte(stream[i:end]), end == len(stream))
		assert.False(t, changed)
		assert.Equal(t, stream[i:end], string(out))
	}
	u, ok := m.Usage()
	assert.True(t, ok)
	assert.Equal(t, Usage{Input: 7, Output: 2}, u)
}

package tokens

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bytesCounter counts one token per byte, so expected totals are plain sums.
var bytesCounter = &Counter{charsPerToken: 1}

func TestEstimateRequest(t *testing.T) {
	for name, tc := range map[string]struct {
		body string
		want Estimate
	}{
		"string content": {
			`{"model":"m","messages":[{"role":"user","content":"hello"}]}`,
			Estimate{Input: tokensReply + tokensPerMessage + 4 + 5},
		},
		"system prompt, name and parts": {
			`{"model":"m","messages":[{"role":"system","content":"be brief"},` +
				`{"role":"user","name":"bob","content":[{"type":"text","text":"abc"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"de"}]}]}`,
			Estimate{Input: tokensReply + 2*tokensPerMessage + 6 + 8 + 4 + tokensPerName + 3 + 3 + tokensPerImage + 2},
		},
		"tool definitions and tool calls": {
			`{"model":"m","tools":[{"type":"function"}],"messages":[{"role":"assistant","content":null,"tool_calls":[1]}]}`,
			Estimate{Input: int64(len(`[{"type":"function"}]`)) + tokensReply + tokensPerMessage + 9 + 3},
		},
		"max_completion_tokens wins over max_tokens, times n": {
			`{"model":"m","max_tokens":10,"max_completion_tokens":7,"n":3,"messages":[]}`,
			Estimate{Input: tokensReply, MaxOutput: 21},
		},
		"max_tokens alone": {
			`{"model":"m","max_tokens":10,"messages":[]}`,
			Estimate{Input: tokensReply, MaxOutput: 10},
		},
		"completions prompt array": {
			`{"model":"m","prompt":["ab","cde"]}`,
			Estimate{Input: 5},
		},
		"token id prompt": {
			`{"model":"m","prompt":[[1,2,3],[4]]}`,
			Estimate{Input: 4},
		},
		"embeddings input": {
			`{"model":"m","input":"abcd"}`,
			Estimate{Input: 4},
		},
		"responses instructions, string input and max_output_tokens": {
			`{"model":"m","instructions":"be brief","input":"hello","max_output_tokens":12}`,
			Estimate{Input: tokensPerMessage + 8 + 5, MaxOutput: 12},
		},
		"responses input items: message parts, function call and its output": {
			`{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"abc"},{"type":"input_image","image_url":"x"}]},` +
				`{"type":"function_call","call_id":"c","name":"fn","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"done"}]}`,
			Estimate{Input: 3*tokensPerMessage + 3 + tokensPerImage + 2 + 2 + 4},
		},
		"messages not an array": {
			`{"model":"m","messages":"x"}`,
			Estimate{},
		},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, EstimateRequest([]byte(tc.body), bytesCounter, nil))
		})
	}
}

func TestHeuristicRoundsUp(t *testing.T) {
	h := &Counter{charsPerToken: 4}
	assert.Equal(t, 0, h.Count("", nil))
	assert.Equal(t, 1, h.Count("a", nil))
	assert.Equal(t, 1, h.Count("abcd", nil))
	assert.Equal(t, 2, h.Count("abcde", nil))
	z, _ := NewCounter("", 0)
	assert.Equal(t, 2, z.Count("abcde", nil), "zero ratio uses the default of 4")
}

func TestBPECountsExactlyWithinBudget(t *testing.T) {
	for _, enc := range []string{EncodingO200k, EncodingCl100k} {
		t.Run(enc, func(t *testing.T) {
			c, err := NewCounter(enc, 4)
			require.NoError(t, err)
			// "hello world" is two tokens in both encodings.
			assert.Equal(t, 2, c.Count("hello world", NewBudget(100)))
			long := strings.Repeat("a", 400)
			b := NewBudget(11)
			assert.Equal(t, 2, c.Count("hello world", b), "fits the budget exactly")
			assert.Equal(t, 100, c.Count(long, b), "past the budget the heuristic counts")
		})
	}
}

func TestEncodingsDiffer(t *testing.T) {
	o, err := NewCounter(EncodingO200k, 0)
	require.NoError(t, err)
	cl, err := NewCounter(EncodingCl100k, 0)
	require.NoError(t, err)
	text := "Привет, мир! Ünïcödé text counts differently across vocabularies."
	no, ncl := o.Count(text, NewBudget(1<<20)), cl.Count(text, NewBudget(1<<20))
	assert.NotEqual(t, no, ncl)
	assert.Positive(t, no)
}

func TestNewCounterRejectsUnknownEncoding(t *testing.T) {
	_, err := NewCounter("p99k", 0)
	require.ErrorIs(t, err, ErrUnknownEncoding)
}

// prompt returns a chat body whose user message is about size bytes of prose.
func prompt(size int) []byte {
	const para = "The gateway estimates tokens before it admits a request, then reconciles with the backend's usage. "
	text := strings.Repeat(para, size/len(para)+1)[:size]
	b, _ := json.Marshal(map[string]any{
		"model": "m", "max_tokens": 256,
		"messages": []map[string]string{{"role": "system", "content": "You are terse."}, {"role": "user", "content": text}},
	})
	return b
}

// BenchmarkEstimate counts prompts seen for the first time: the count
// cache is off (BenchmarkEstimateCache measures it).
func BenchmarkEstimate(b *testing.B) {
	for _, enc := range []string{EncodingO200k, EncodingHeuristic} {
		c, err := NewCounter(enc, 0)
		require.NoError(b, err)
		c.cache = nil
		for _, size := range []int{1 << 10, 32 << 10, 512 << 10} {
			body := prompt(size)
			for _, budget := range []int{DefaultMaxExactBytes, 1 << 30} {
				if enc == EncodingHeuristic && budget != DefaultMaxExactBytes {
					continue
				}
				name := fmt.Sprintf("%s/%dKiB/exact=%dKiB", enc, size>>10, budget>>10)
				b.Run(name, func(b *testing.B) {
					b.ReportAllocs()
					b.SetBytes(int64(len(body)))
					for b.Loop() {
						EstimateRequest(body, c, NewBudget(budget))
					}
				})
			}
		}
	}
}

// BenchmarkEstimateCache is a 1 KiB o200k_base prompt through the count
// cache: "repeated" sends the same prompt every time (a system prompt, the
// e2e/bench body), "distinct" a new one every time (a hash and a lookup on
// top of the count), "off" counts without the cache.
func BenchmarkEstimateCache(b *testing.B) {
	body := prompt(1 << 10)
	// The digits right after the user message's opening quote change per
	// request in "distinct".
	at := bytes.LastIndex(body, []byte(`"content":"`)) + len(`"content":"`)
	for _, mode := range []string{"off", "repeated", "distinct"} {
		c, err := NewCounter(EncodingO200k, 0)
		require.NoError(b, err)
		if mode == "off" {
			c.cache = nil
		}
		b.Run(mode, func(b *testing.B) {
			body := bytes.Clone(body)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			i := 0
			for b.Loop() {
				if mode == "distinct" {
					i++
					strconv.AppendInt(body[:at], int64(100000000+i), 10)
				}
				EstimateRequest(body, c, NewBudget(DefaultMaxExactBytes))
			}
		})
	}
}

// TestEstimateNeverOverflows (issue 23 finding 3): max_tokens × n
// saturates and n counts at most MaxChoices, so no body yields a negative
// or wrapped output reservation. Unpatched, 8 × 2^60 wrapped to MinInt64.
func TestEstimateNeverOverflows(t *testing.T) {
	for name, tc := range map[string]struct {
		body string
		want int64
	}{
		"n wraps the product": {`{"max_tokens":8,"n":1152921504606846976}`, 8 * MaxChoices},
		"huge max_tokens":     {`{"max_tokens":4611686018427387904,"n":4}`, math.MaxInt64},
		"max int64":           {`{"max_completion_tokens":9223372036854775807,"n":2}`, math.MaxInt64},
		"negative n is one":   {`{"max_tokens":8,"n":-5}`, 8},
		"negative max_tokens": {`{"max_tokens":-8,"n":5}`, 0},
		"n within bound":      {`{"max_tokens":8,"n":128}`, 1024},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, EstimateRequest([]byte(tc.body), bytesCounter, nil).MaxOutput)
		})
	}
}

func TestMulSat(t *testing.T) {
	assert.Equal(t, int64(6), MulSat(2, 3))
	assert.Equal(t, int64(math.MaxInt64), MulSat(math.MaxInt64, 2))
	assert.Equal(t, int64(math.MaxInt64), MulSat(1<<32, 1<<31))
	assert.Equal(t, int64(0), MulSat(-1, 5))
	assert.Equal(t, int64(0), MulSat(5, 0))
}

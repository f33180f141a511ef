// Package tokens estimates how many tokens a request will consume and reads
// how many it did consume from the backend's response: the numbers the
// limiter reserves and reconciles.
package tokens

import (
	"errors"
	"fmt"
	"math"

	"github.com/tidwall/gjson"
)

// Encodings a model can be counted with.
const (
	EncodingO200k     = "o200k_base"
	EncodingCl100k    = "cl100k_base"
	EncodingHeuristic = "heuristic"
)

// DefaultCharsPerToken is the heuristic ratio used when none is configured:
// about four bytes of English text per token.
const DefaultCharsPerToken = 4.0

// DefaultMaxExactBytes is how many bytes of one request a BPE Counter
// tokenizes exactly before it counts the rest with the heuristic. Exact
// counting runs at about 100 MB/s on one core for English prose with
// o200k_base, 150 MB/s with cl100k_base, and 50 MB/s for a mix of code,
// CJK and emoji (BenchmarkCount), so 8 KiB costs well under 0.2 ms: inside
// the 1 ms time-to-first-token budget.
const DefaultMaxExactBytes = 8 << 10

// ErrUnknownEncoding is returned by NewCounter for an encoding it does not know.
var ErrUnknownEncoding = errors.New("unknown token encoding")

// Budget bounds how many bytes of one request are counted exactly. A nil
// or zero Budget allows nothing exact. A Budget belongs to one request.
type Budget struct {
	left int
}

// NewBudget returns a budget of n exactly-counted bytes.
func NewBudget(n int) *Budget { return &Budget{left: n} }

// take reports whether n more bytes fit and, if so, spends them.
func (b *Budget) take(n int) bool {
	if b == nil || n > b.left {
		return false
	}
	b.left -= n
	return true
}

// Counter counts tokens with an OpenAI byte-pair encoding while a request's
// Budget lasts, and with the chars-per-token heuristic otherwise (or always,
// when it has no encoding). Its exact counts equal the tokenizer library's
// Codec.Count for every input, and counting allocates nothing for valid
// UTF-8 but a copy of a string it caches. Exact counts of strings of 256
// bytes and more that come back (a system prompt, the earlier turns of a
// conversation) are remembered per encoding, up to 2 MiB of text
// (cache.go). It is immutable and safe for concurrent use.
type Counter struct {
	enc           *encoding // nil: heuristic only
	charsPerToken float64
	// cache is enc's count cache; nil counts every string afresh.
	cache *countCache
}

// NewCounter returns the Counter for an encoding name: o200k_base,
// cl100k_base or heuristic (also ""). charsPerToken configures the
// heuristic; 0 means DefaultCharsPerToken. The first Counter of an
// encoding builds the encoding's rank table (tens of milliseconds and a few
// MiB, shared by every later Counter).
func NewCounter(encoding string, charsPerToken float64) (*Counter, error) {
	if charsPerToken <= 0 {
		charsPerToken = DefaultCharsPerToken
	}
	c := &Counter{charsPerToken: charsPerToken}
	switch encoding {
	case "", EncodingHeuristic:
		return c, nil
	case EncodingO200k, EncodingCl100k:
		enc, err := loadEncoding(encoding)
		if err != nil {
			return nil, err
		}
		c.enc, c.cache = enc, enc.cache
		return c, nil
	default:
		return nil, fmt.Errorf("cannot count with %q: %w", encoding, ErrUnknownEncoding)
	}
}

// Count returns the token count of s: exact when the Counter has an
// encoding and s fits in budget (which it then spends), else
// ceil(len(s)/charsPerToken). The heuristic counts bytes, not runes, so it
// over- rather than under-estimates non-ASCII text.
func (c *Counter) Count(s string, budget *Budget) int {
	if len(s) == 0 {
		return 0
	}
	if c.enc != nil && budget.take(len(s)) {
		if c.cache != nil {
			return c.cache.count(s, c.enc)
		}
		return c.enc.count(s)
	}
	return c.heuristic(len(s))
}

func (c *Counter) heuristic(n int) int {
	return int(math.Ceil(float64(n) / c.charsPerToken))
}

// countJSON counts a JSON string value. A string that will be counted by
// the heuristic is measured on its raw bytes, without unescaping a copy.
func (c *Counter) countJSON(v gjson.Result, budget *Budget) int {
	if v.Type != gjson.String {
		return c.Count(v.Raw, budget)
	}
	if c.enc == nil || budget == nil || len(v.Raw) > budget.left+2 {
		return c.heuristic(max(len(v.Raw)-2, 0))
	}
	return c.Count(v.Str, budget)
}

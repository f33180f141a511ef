package extproc

import (
	"bytes"
	"unicode"
	"unicode/utf8"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc/tokens"
)

// MaxN is the most choices (n) a request may ask for, as the OpenAI API
// allows; it bounds max_tokens × n before any cost is computed.
const MaxN = tokens.MaxChoices

// Fields policy reads from a client body, in bodyPolicy.names order. The
// first ones are typed (checkField); the rest are only kept unique.
const (
	fieldModel = iota
	fieldStream
	fieldMaxTokens
	fieldMaxCompletionTokens
	fieldN
	fieldTemperature
	fieldTopP
	fieldStreamOptions
	fieldMaxOutputTokens // the Responses API's output cap
	numTypedFields
)

// The prompt fields follow the typed ones in policyFields; the scan keeps
// where each lies in the body, for endpoint picking (picking.go).
const (
	fieldMessages = numTypedFields + iota
	fieldPrompt
	fieldInput
	numKeptFields
)

// policyFields are the top-level fields routing, the token cap, shaping
// and the estimate read. Shaping rules of the config add their own.
var policyFields = []string{
	fieldModel: "model", fieldStream: "stream", fieldMaxTokens: "max_tokens",
	fieldMaxCompletionTokens: "max_completion_tokens", fieldN: "n",
	fieldTemperature: "temperature", fieldTopP: "top_p", fieldStreamOptions: "stream_options", fieldMaxOutputTokens: "max_output_tokens",
	numTypedFields: "messages", "prompt", "input", "tools", "functions",
}

// bodyPolicy is what every client JSON body is held to before anything
// reads it: how deep it may nest, and which top-level fields must appear
// at most once, spelled exactly. It is built once per config (NewRoutes),
// immutable, and shared by every request.
type bodyPolicy struct {
	maxDepth int
	// names are the controlled fields; byFold maps each one's folded
	// spelling (foldName) to its index in names.
	names  []string
	byFold map[string]int
}

// defaultBodyPolicy holds bodies to the defaults when no config says more.
var defaultBodyPolicy = newBodyPolicy(nil)

// newBodyPolicy returns the policy of cfg (nil: the defaults): the
// configured depth limit, and the fixed policy fields plus every field a
// model's shaping forbids, drops or defaults.
func newBodyPolicy(cfg *config.Config) *bodyPolicy {
	bp := &bodyPolicy{maxDepth: config.DefaultMaxJSONDepth, byFold: map[string]int{}}
	add := func(name string) {
		if k := string(foldName(nil, name)); !hasKey(bp.byFold, k) {
			bp.byFold[k] = len(bp.names)
			bp.names = append(bp.names, name)
		}
	}
	for _, f := range policyFields {
		add(f)
	}
	if cfg == nil {
		return bp
	}
	if cfg.Gateway.MaxJSONDepth > 0 {
		bp.maxDepth = cfg.Gateway.MaxJSONDepth
	}
	for i := range cfg.Models {
		if s := cfg.Models[i].Shaping; s != nil {
			for _, f := range append(append([]string(nil), s.Forbid...), s.Drop...) {
				add(f)
			}
			for f := range s.Defaults {
				add(f)
			}
		}
	}
	return bp
}

func hasKey(m map[string]int, k string) bool {
	_, ok := m[k]
	return ok
}

// lookup returns the index of the controlled field key folds onto, if any.
// Cost: one map lookup; a key with upper case, '-' or non-ASCII runes is
// folded first into a stack buffer.
func (bp *bodyPolicy) lookup(key string) (int, bool) {
	var buf [64]byte
	i, ok := bp.byFold[string(foldName(buf[:0], key))]
	return i, ok
}

// foldName appends to dst the spelling of name that every name a lenient
// JSON decoder could match with it shares: each rune replaced by the
// smallest rune of its Unicode case-folding orbit and lower-cased when
// ASCII (so "MAX_TOKENS", "max_toKens" with a Kelvin sign and "max_tokens"
// agree, as Go's encoding/json matches them), with '_' and '-' left out
// (decoders that ignore delimiters, such as json/v2's case-insensitive
// mode). A plain lower-case ASCII name is returned as is.
func foldName(dst []byte, name string) []byte {
	plain := true
	for i := 0; i < len(name); i++ {
		if c := name[i]; c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') || c == '_' || c == '-' {
			plain = false
			break
		}
	}
	if plain {
		return append(dst, name...)
	}
	for _, r := range name {
		switch {
		case r == '_' || r == '-':
			continue
		case r >= utf8.RuneSelf:
			for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
				r = min(r, f)
			}
		}
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		dst = utf8.AppendRune(dst, r)
	}
	return dst
}

// checkDepth reports whether body's arrays and objects nest at most limit
// levels deep. It is one pass with no recursion and no allocation, so any
// body up to the size cap is cheap to refuse; brackets inside strings
// (escaped quotes included) do not count. It does not validate the JSON:
// it bounds the recursion of the parsers that run after it.
func checkDepth(body []byte, limit int) bool {
	depth := 0
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '"':
			i = stringEnd(body, i+1)
		case '[', '{':
			if depth++; depth > limit {
				return false
			}
		case ']', '}':
			// Never below zero: a stray closer cannot buy deeper nesting later.
			depth = max(depth-1, 0)
		}
	}
	return true
}

// stringEnd returns the index of the quote closing the string whose
// contents start at i, or len(b) when it is unterminated.
func stringEnd(b []byte, i int) int {
	for {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return len(b)
		}
		j := i + q
		k := j
		for k > i && b[k-1] == '\\' {
			k--
		}
		if (j-k)%2 == 0 {
			return j
		}
		i = j + 1
	}
}

package extproc

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc/auth"
)

// nested is a chat body whose messages nest depth arrays deep, closed.
func nested(depth int) string {
	return `{"model":"m","messages":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`
}

// TestDeepNestingRefused (issue 23 finding 1): a body nested deeper than
// gateway.max_json_depth is refused with a 400 naming the limit before any
// recursive parser sees it. Unpatched, the 10,000-deep body was accepted
// (and ~6,000,000 levels overflowed the stack in gjson.ValidBytes).
func TestDeepNestingRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		body string
		ok   bool
	}{
		"at the limit":        {nested(config.DefaultMaxJSONDepth - 1), true}, // plus the top-level object
		"one over":            {nested(config.DefaultMaxJSONDepth), false},
		"deep":                {nested(10000), false},
		"unterminated":        {`{"model":"m","messages":` + strings.Repeat("[", 100000), false},
		"objects":             {`{"model":"m","x":` + strings.Repeat(`{"a":`, 200) + `1` + strings.Repeat("}", 200) + `}`, false},
		"brackets in strings": {`{"model":"m","x":"` + strings.Repeat("[{", 5000) + `"}`, true},
		"escaped quote":       {`{"model":"m","x":"\"` + strings.Repeat("[", 5000) + `"}`, true},
		"escaped backslash":   {`{"model":"m","x":"\\","y":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`, false},
		"stray closers":       {`{"model":"m"}` + strings.Repeat("]", 500) + strings.Repeat("[", 200), false},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseRequest([]byte(tc.body), nil)
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrBadJSON)
			if name != "stray closers" {
				assert.Contains(t, err.Error(), "128 levels")
				assert.Contains(t, err.Error(), "gateway.max_json_depth")
			}
		})
	}
	cfg := &config.Config{Gateway: config.Gateway{MaxJSONDepth: 4}}
	_, err := parseRequest([]byte(nested(4)), newBodyPolicy(cfg))
	require.ErrorIs(t, err, ErrBadJSON, "the configured limit applies")
	_, err = parseRequest([]byte(nested(3)), newBodyPolicy(cfg))
	require.NoError(t, err)
}

// TestDeepNestingRefusedAtGatewaySize: the ~6,000,000-level body of the
// report, under the 8 MiB cap, is refused in one cheap pass.
func TestDeepNestingRefusedAtGatewaySize(t *testing.T) {
	body := []byte(`{"model":"m","messages":` + strings.Repeat("[", 6_000_000))
	_, err := parseRequest(body, nil)
	require.ErrorIs(t, err, ErrBadJSON)
	assert.Contains(t, err.Error(), "max_json_depth")
}

// shapedPolicy is the body policy of a config whose shaping names fields.
func shapedPolicy(t *testing.T) *bodyPolicy {
	t.Helper()
	cfg := &config.Config{Models: []config.Model{{Name: "m", Shaping: &config.Shaping{
		Forbid: []string{"logprobs"}, Drop: []string{"user"}, Defaults: map[string]any{"seed": 1},
	}}}}
	return newBodyPolicy(cfg)
}

// TestCaseVariantKeysRefused (issue 23 finding 2): a top-level key that a
// case-folding decoder would read as a field policy controls is refused
// with a 400 naming the field. Unpatched, all but the escaped model passed.
func TestCaseVariantKeysRefused(t *testing.T) {
	for name, tc := range map[string]struct{ body, field string }{
		"MODEL beside model":  {`{"model":"public-fake","MODEL":"fake-secret"}`, "model"},
		"Model alone":         {`{"Model":"fake-secret","model":"m"}`, "model"},
		"escaped model":       {`{"\u006dodel":"m"}`, "model"},
		"MAX_TOKENS":          {`{"model":"m","max_tokens":10,"MAX_TOKENS":400}`, "max_tokens"},
		"Kelvin sign":         {"{\"model\":\"m\",\"max_to\u212aens\":400}", "max_tokens"},
		"long s":              {"{\"model\":\"m\",\"\u017ftream\":true}", "stream"},
		"dash delimiter":      {`{"model":"m","max-tokens":400}`, "max_tokens"},
		"camel case":          {`{"model":"m","maxCompletionTokens":400}`, "max_completion_tokens"},
		"N":                   {`{"model":"m","N":100}`, "n"},
		"Temperature":         {`{"model":"m","Temperature":9}`, "temperature"},
		"MESSAGES":            {`{"model":"m","messages":[],"MESSAGES":[]}`, "messages"},
		"shaping forbid":      {`{"model":"m","LogProbs":true}`, "logprobs"},
		"shaping drop":        {`{"model":"m","USER":"x"}`, "user"},
		"shaping default":     {`{"model":"m","Seed":2}`, "seed"},
		"include usage cased": {`{"model":"m","stream_options":{"INCLUDE_USAGE":false}}`, "include_usage"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseRequest([]byte(tc.body), shapedPolicy(t))
			require.ErrorIs(t, err, ErrBadJSON)
			assert.Contains(t, err.Error(), `"`+tc.field+`"`)
		})
	}
	got, err := parseRequest([]byte(`{"model":"m","Xmodel":1,"model_x":2,"metadata":{"MODEL":"x"}}`), shapedPolicy(t))
	require.NoError(t, err, "other keys and nested keys are not policy's")
	assert.Equal(t, "m", got.Model)
}

// TestRepeatedPolicyFieldsRefused (issue 23 finding 10): a field policy
// reads may appear once; a backend honouring the last copy would see a
// value shaping and the token cap never checked. Unpatched, only model and
// stream repeats were refused.
func TestRepeatedPolicyFieldsRefused(t *testing.T) {
	for name, tc := range map[string]struct{ body, field string }{
		"max_tokens":            {`{"model":"m","max_tokens":50,"messages":[],"max_tokens":900}`, "max_tokens"},
		"max_completion_tokens": {`{"model":"m","max_completion_tokens":1,"max_completion_tokens":9}`, "max_completion_tokens"},
		"n":                     {`{"model":"m","n":1,"n":100}`, "n"},
		"top_p":                 {`{"model":"m","top_p":0.1,"top_p":1}`, "top_p"},
		"shaping field":         {`{"model":"m","seed":1,"seed":2}`, "seed"},
		"include_usage":         {`{"model":"m","stream_options":{"include_usage":true,"include_usage":false}}`, "include_usage"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseRequest([]byte(tc.body), shapedPolicy(t))
			require.ErrorIs(t, err, ErrBadJSON)
			assert.Contains(t, err.Error(), `"`+tc.field+`"`)
		})
	}
}

// TestPolicyFieldTypes (issue 23 findings 3 and 10): fields policy reads
// must have their type, n stays within 1..MaxN, and the values reach
// requestInfo. Unpatched, every refusal below passed.
func TestPolicyFieldTypes(t *testing.T) {
	for name, tc := range map[string]struct {
		body  string
		field string // refused naming it; empty: accepted
		want  auth.TokenRequest
	}{
		"max_tokens string":    {body: `{"model":"m","max_tokens":"5000"}`, field: "max_tokens"},
		"max_tokens float":     {body: `{"model":"m","max_tokens":1.5}`, field: "max_tokens"},
		"max_tokens negative":  {body: `{"model":"m","max_tokens":-1}`, field: "max_tokens"},
		"max_tokens huge":      {body: `{"model":"m","max_tokens":99999999999999999999}`, field: "max_tokens"},
		"completion string":    {body: `{"model":"m","max_completion_tokens":"9"}`, field: "max_completion_tokens"},
		"n overflowing":        {body: `{"model":"m","max_tokens":8,"n":1152921504606846976}`, field: "n"},
		"n zero":               {body: `{"model":"m","n":0}`, field: "n"},
		"n above 128":          {body: `{"model":"m","n":129}`, field: "n"},
		"n string":             {body: `{"model":"m","n":"2"}`, field: "n"},
		"temperature string":   {body: `{"model":"m","temperature":"2"}`, field: "temperature"},
		"top_p bool":           {body: `{"model":"m","top_p":true}`, field: "top_p"},
		"stream_options array": {body: `{"model":"m","stream_options":[]}`, field: "stream_options"},
		"include_usage string": {body: `{"model":"m","stream_options":{"include_usage":"yes"}}`, field: "include_usage"},
		"all read":             {body: `{"model":"m","max_tokens":10,"max_completion_tokens":20,"n":128,"temperature":1,"top_p":null}`, want: auth.TokenRequest{MaxTokens: 10, MaxCompletionTokens: 20, N: 128}},
		"nulls":                {body: `{"model":"m","max_tokens":null,"n":null,"stream_options":null}`, want: auth.TokenRequest{MaxTokens: -1, MaxCompletionTokens: -1, N: 1}},
		"zero max_tokens":      {body: `{"model":"m","max_tokens":0}`, want: auth.TokenRequest{MaxTokens: 0, MaxCompletionTokens: -1, N: 1}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := parseRequest([]byte(tc.body), nil)
			if tc.field == "" {
				require.NoError(t, err)
				assert.Equal(t, tc.want, got.Tokens)
				return
			}
			require.ErrorIs(t, err, ErrBadJSON)
			assert.Contains(t, err.Error(), tc.field)
		})
	}
}

func TestFoldName(t *testing.T) {
	for in, want := range map[string]string{
		"max_tokens": "maxtokens", "MAX_TOKENS": "maxtokens", "max-Tokens": "maxtokens",
		"max_to\u212aens": "maxtokens", "\u017ftream": "stream", "model": "model", "é": "é", "É": "é",
	} {
		assert.Equal(t, foldName(nil, want), foldName(nil, in), in)
	}
}

// FuzzCheckDepth: checkDepth agrees with the depth a real parse reaches
// (counted iteratively over valid JSON), and never panics.
func FuzzCheckDepth(f *testing.F) {
	for _, s := range []string{`[]`, `{"a":[{"b":"[["}]}`, `"\\"`, `"\"[`, `[[[`, `]]][[`, nested(3)} {
		f.Add([]byte(s), 2)
	}
	f.Fuzz(func(t *testing.T, body []byte, limit int) {
		limit = min(max(limit, 0), 64)
		ok := checkDepth(body, limit)
		if !json.Valid(body) {
			return
		}
		assert.Equal(t, jsonDepth(body) <= limit, ok, "limit %d: %q", limit, body)
	})
}

// jsonDepth is the nesting depth of valid JSON by encoding/json's tokenizer.
func jsonDepth(body []byte) int {
	dec := json.NewDecoder(bytes.NewReader(body))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			depth++
			deepest = max(deepest, depth)
		case json.Delim(']'), json.Delim('}'):
			depth--
		}
	}
}

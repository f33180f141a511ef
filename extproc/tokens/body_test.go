package tokens

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

// feedBody feeds body to a new meter cut at every position in cuts.
func feedBody(body []byte, cuts ...int) *BodyMeter {
	m := &BodyMeter{}
	prev := 0
	for _, c := range cuts {
		if c < prev || c > len(body) {
			continue
		}
		m.Feed(body[prev:c], false)
		prev = c
	}
	m.Feed(body[prev:], true)
	return m
}

// TestBodyMeterReadsUsageOfLargeBody: a non-streamed response far over
// 1 MiB, in chunks of random sizes (some of one byte), still yields the
// usage the backend put at its end (issue 23, finding 4: such bodies were
// charged 0 output tokens).
func TestBodyMeterReadsUsageOfLargeBody(t *testing.T) {
	body := largeBody(3 << 20)
	require.Greater(t, len(body), 1<<20)
	rng := rand.New(rand.NewPCG(23, 4))
	for run := range 5 {
		var cuts []int
		for at := 0; at < len(body); {
			n := 1 + rng.IntN(64<<10)
			if rng.IntN(4) == 0 {
				n = 1 + rng.IntN(3)
			}
			at += n
			cuts = append(cuts, at)
		}
		m := feedBody(body, cuts...)
		u, ok := m.Usage()
		require.True(t, ok, "run %d: %d chunks", run, len(cuts)+1)
		assert.Equal(t, Usage{Input: 12, Output: 34567}, u)
		assert.Equal(t, "m-1", m.Model())
		assert.True(t, m.Ended())
		assert.LessOrEqual(t, cap(m.key), maxKey*2, "the meter keeps keys, not the body")
	}
}

func TestBodyMeter(t *testing.T) {
	u := Usage{Input: 5, Output: 2}
	usage := `"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}`
	for name, tc := range map[string]struct {
		body  string
		want  Usage
		ok    bool
		model string
	}{
		"usage last":             {body: `{"id":"x","model":"m","choices":[{"message":{"content":"hi"}}],` + usage + `}`, want: u, ok: true, model: "m"},
		"usage first":            {body: `{` + usage + `,"choices":[],"model":"m"}`, want: u, ok: true, model: "m"},
		"whitespace":             {body: " \n{ \"usage\" :\t{\"prompt_tokens\":5, \"completion_tokens\":2} , \"model\" : \"m\" }\n", want: u, ok: true, model: "m"},
		"escaped key":            {body: `{"\u0075sage":{"prompt_tokens":5,"completion_tokens":2},"mod\u0065l":"m"}`, want: u, ok: true, model: "m"},
		"first of duplicates":    {body: `{` + usage + `,"usage":{"prompt_tokens":9,"completion_tokens":9}}`, want: u, ok: true},
		"nested usage ignored":   {body: `{"choices":[{"usage":{"prompt_tokens":9,"completion_tokens":9}}],"data":{"model":"n"}}`},
		"usage in a string":      {body: `{"content":"\",\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":9}","model":"m"}`, model: "m"},
		"backslash runs":         {body: `{"a":"\\\\\\","b":"\\\"usage\\\":","model":"m\\\\"}`, model: `m\\`},
		"string key value":       {body: `{"k":"usage","usage":{"prompt_tokens":5,"completion_tokens":2}}`, want: u, ok: true},
		"truncated usage":        {body: `{"model":"m",` + usage[:40], model: "m"},
		"usage not an object":    {body: `{"usage":"lots"}`},
		"not an object":          {body: `[` + usage + `]`},
		"usage after the object": {body: `{"a":1}{` + usage + `}`},
		"model not a string":     {body: `{"model":7,` + usage + `}`, want: u, ok: true},
		"long key":               {body: `{"` + strings.Repeat("k", 200) + `":1,` + usage + `}`, want: u, ok: true},
		"usage too long":         {body: `{"usage":{"prompt_tokens":5,"completion_tokens":2,"x":"` + strings.Repeat("y", maxMember) + `"}}`},
		"empty":                  {body: ``},
	} {
		t.Run(name, func(t *testing.T) {
			for cut := 0; cut <= len(tc.body) && cut < 400; cut++ {
				m := feedBody([]byte(tc.body), cut, cut+3)
				got, ok := m.Usage()
				require.Equal(t, tc.ok, ok, "cut at %d", cut)
				require.Equal(t, tc.want, got, "cut at %d", cut)
				require.Equal(t, tc.model, m.Model(), "cut at %d", cut)
			}
		})
	}
}

// FuzzBodyMeter holds the scanner to gjson on whole valid bodies, and to
// itself across chunk splits on any bytes.
func FuzzBodyMeter(f *testing.F) {
	f.Add([]byte(`{"model":"m","usage":{"prompt_tokens":1,"completion_tokens":2}}`), 3, 9)
	f.Add([]byte(`{"a":"\\\"","usage":{"prompt_tokens":1}}`), 7, 8)
	f.Add([]byte(`{"\u0075sage":{"prompt_tokens":1},"choices":[{"x":"}"}]}`), 1, 40)
	f.Fuzz(func(t *testing.T, body []byte, cut, cut2 int) {
		whole := feedBody(body)
		u, ok := whole.Usage()
		split := feedBody(body, cut, cut2)
		su, sok := split.Usage()
		if ok != sok || u != su || whole.Model() != split.Model() {
			t.Fatalf("split at %d,%d: %v %v %q, whole: %v %v %q", cut, cut2, su, sok, split.Model(), u, ok, whole.Model())
		}
		if len(body) > maxMember || !gjson.ValidBytes(body) {
			return
		}
		wu, wok := ParseUsage(gjson.GetBytes(body, "usage"))
		if wok != ok || wu != u {
			t.Fatalf("usage %v %v, gjson %v %v", u, ok, wu, wok)
		}
		if wm := gjson.GetBytes(body, "model"); wm.Type == gjson.String && wm.Str != whole.Model() {
			t.Fatalf("model %q, gjson %q", whole.Model(), wm.Str)
		}
	})
}

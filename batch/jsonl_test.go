package batch

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const goodLine = `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[]}}`

func TestParseInput(t *testing.T) {
	for name, tc := range map[string]struct {
		in, endpoint string
		line         int
		msg          string
	}{
		"ok":             {in: goodLine + "\n\n" + strings.Replace(goodLine, `"a"`, `"b"`, 1) + "\n"},
		"empty":          {in: "\n  \n", msg: "no requests"},
		"not json":       {in: goodLine + "\n{nope", line: 2, msg: "not a JSON object"},
		"duplicate id":   {in: goodLine + "\n" + goodLine, line: 2, msg: "earlier line"},
		"get":            {in: strings.Replace(goodLine, "POST", "GET", 1), line: 1, msg: "POST"},
		"bad url":        {in: strings.Replace(goodLine, "/v1/chat/completions", "/v1/images", 1), line: 1, msg: "url must be"},
		"other url":      {in: goodLine, endpoint: "/v1/embeddings", line: 1, msg: "batch's endpoint"},
		"no model":       {in: strings.Replace(goodLine, `"model":"m",`, "", 1), line: 1, msg: "model"},
		"body array":     {in: `{"custom_id":"a","method":"POST","url":"/v1/embeddings","body":[1]}`, line: 1, msg: "JSON object"},
		"no custom id":   {in: strings.Replace(goodLine, `"custom_id":"a",`, "", 1), line: 1, msg: "custom_id"},
		"long custom id": {in: strings.Replace(goodLine, `"a"`, `"`+strings.Repeat("x", 65)+`"`, 1), line: 1, msg: "custom_id"},
	} {
		t.Run(name, func(t *testing.T) {
			lines, err := ParseInput([]byte(tc.in), tc.endpoint)
			if tc.msg == "" {
				require.NoError(t, err)
				assert.Len(t, lines, 2)
				return
			}
			var ie *InputError
			require.ErrorAs(t, err, &ie)
			assert.True(t, errors.Is(err, ErrBadInput))
			assert.Equal(t, tc.line, ie.Line)
			assert.Contains(t, ie.Msg, tc.msg)
		})
	}
}

func FuzzBatchInput(f *testing.F) {
	f.Add([]byte(goodLine), "")
	f.Add([]byte(goodLine+"\n"+goodLine), "/v1/chat/completions")
	f.Add([]byte(`{"custom_id":"x","method":"POST","url":"/v1/embeddings","body":{"model":"e","input":"hi"}}`), "/v1/embeddings")
	f.Add([]byte("\n\n{"), "")
	f.Fuzz(func(t *testing.T, data []byte, endpoint string) {
		lines, err := ParseInput(data, endpoint)
		if err != nil {
			require.ErrorIs(t, err, ErrBadInput)
			return
		}
		ids := map[string]bool{}
		for _, l := range lines {
			require.False(t, ids[l.CustomID])
			ids[l.CustomID] = true
			require.Equal(t, "POST", l.Method)
			require.True(t, Endpoints[l.URL])
		}
	})
}

package extproc

import (
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/streamgate/streamgate/extproc/auth"
)

// info is what parseRequest reads from a body with no token fields.
func info(model string, stream bool) requestInfo {
	return requestInfo{Model: model, Stream: stream, Tokens: auth.TokenRequest{MaxTokens: -1, MaxCompletionTokens: -1, N: 1}, MaxOutputTokens: -1}
}

func TestParseRequest(t *testing.T) {
	for name, tc := range map[string]struct {
		body    string
		want    requestInfo
		wantErr error
	}{
		"chat":                             {`{"model":"m","stream":true}`, info("m", true), nil},
		"stream null":                      {`{"model":"m","stream":null}`, info("m", false), nil},
		"nested model":                     {`{"x":{"model":"n"},"model":"m"}`, info("m", false), nil},
		"whitespace":                       {" \n{ \"model\" : \"m\" }\n", info("m", false), nil},
		"empty model":                      {`{"model":""}`, requestInfo{}, ErrMissingModel},
		"duplicate model":                  {`{"model":"a","model":"b"}`, requestInfo{}, ErrBadJSON},
		"duplicate strm":                   {`{"model":"a","stream":false,"stream":true}`, requestInfo{}, ErrBadJSON},
		"trailing junk":                    {`{"model":"a"} x`, requestInfo{}, ErrBadJSON},
		"array":                            {`[]`, requestInfo{}, ErrBadJSON},
		"empty":                            {``, requestInfo{}, ErrBadJSON},
		"max_output_tokens":                {`{"model":"m","max_output_tokens":7}`, func() requestInfo { i := info("m", false); i.MaxOutputTokens = 7; return i }(), nil},
		"max_output_tokens not an integer": {`{"model":"m","max_output_tokens":"7"}`, requestInfo{}, ErrBadJSON},
		"max_output_tokens respelled":      {`{"model":"m","Max_Output_Tokens":7}`, requestInfo{}, ErrBadJSON},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := parseRequest([]byte(tc.body), nil)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, `"`+tc.want.Model+`"`, tc.body[got.model.at:got.model.at+got.model.n], "the model span holds the model's JSON string")
			got.model = span{}
			assert.Equal(t, tc.want, got)
		})
	}
}

// FuzzParseRequest: no panic; whatever is accepted is valid JSON with a
// string model, and rewriting it yields valid JSON carrying the new model.
// TestInvalidUTF8Refused: JSON is UTF-8; a body with any other byte
// sequence is refused before a parser or a backend reads it (issue 21).
func TestInvalidUTF8Refused(t *testing.T) {
	for name, body := range map[string]string{
		"in a message":     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\xff\"}]}",
		"in the model":     "{\"model\":\"m\xc3\"}",
		"overlong slash":   "{\"model\":\"m\xc0\xaf\"}",
		"UTF-16 surrogate": "{\"model\":\"m\xed\xa0\x80\"}",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseRequest([]byte(body), nil)
			require.ErrorIs(t, err, ErrBadJSON)
			assert.Contains(t, err.Error(), "UTF-8")
		})
	}
	_, err := parseRequest([]byte(`{"model":"é\u00e9"}`), nil)
	require.NoError(t, err)
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{`{"model":"m","stream":true}`, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, `{"model":"\u00e9"}`, `{"a":[1,{"model":2}],"model":"x"}`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		info, err := parseRequest(body, nil)
		if err != nil {
			return
		}
		require.True(t, gjson.ValidBytes(body))
		require.True(t, utf8.Valid(body), "accepted a body that is not UTF-8")
		require.NotEmpty(t, info.Model)
		out, err := rewriteModel(body, "upstream/model")
		require.NoError(t, err)
		require.True(t, gjson.ValidBytes(out), "rewrite produced invalid JSON: %q", out)
		again, err := parseRequest(out, nil)
		require.NoError(t, err)
		assert.Equal(t, "upstream/model", again.Model)
		assert.Equal(t, info.Stream, again.Stream)
	})
}

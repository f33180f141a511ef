package fakellm_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakellm"
)

func TestRerankFake(t *testing.T) {
	srv := httptest.NewServer(fakellm.New(fakellm.Options{}))
	t.Cleanup(srv.Close)
	post := func(body string) (int, map[string]any) {
		resp, err := http.Post(srv.URL+"/v1/rerank", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}
	for name, tc := range map[string]struct {
		body    string
		status  int
		indexes []float64
		tokens  float64
	}{
		"ranked, cut to top_n": {`{"model":"m","query":"red apple","documents":["pear","red apple",{"text":"red"}],"top_n":2}`, 200, []float64{1, 2}, 6},
		"all without top_n":    {`{"model":"m","query":"a","documents":["b","a"]}`, 200, []float64{1, 0}, 3},
		"missing query":        {`{"model":"m","documents":["b"]}`, 400, nil, 0},
		"no documents":         {`{"model":"m","query":"a","documents":[]}`, 400, nil, 0},
		"bad document":         {`{"model":"m","query":"a","documents":[{"x":1}]}`, 400, nil, 0},
	} {
		t.Run(name, func(t *testing.T) {
			status, out := post(tc.body)
			require.Equal(t, tc.status, status, out)
			if status != 200 {
				assert.Contains(t, out, "error")
				return
			}
			var got []float64
			for _, r := range out["results"].([]any) {
				got = append(got, r.(map[string]any)["index"].(float64))
			}
			assert.Equal(t, tc.indexes, got)
			assert.Equal(t, tc.tokens, out["usage"].(map[string]any)["total_tokens"])
		})
	}
}

package tokens

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/tidwall/gjson"
)

func TestEstimateRerankCountsQueryAndDocuments(t *testing.T) {
	for name, tc := range map[string]struct {
		body string
		want int64
	}{
		"strings":          {`{"model":"m","query":"abc","documents":["de","fgh"],"top_n":1}`, 3 + 2 + 3},
		"cohere objects":   {`{"model":"m","query":"abc","documents":[{"text":"de"},{"text":"fgh","id":1}]}`, 3 + 2 + 3},
		"other objects":    {`{"model":"m","query":"abc","documents":[{"image":"x"}]}`, 3 + int64(len(`{"image":"x"}`))},
		"a single string":  {`{"model":"m","query":"abc","documents":"de"}`, 3 + 2},
		"numbers and null": {`{"model":"m","query":null,"documents":[1,null,true]}`, 0},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, EstimateRequest([]byte(tc.body), bytesCounter, nil).Input)
		})
	}
}

func TestParseUsageReadsRerankTotalTokens(t *testing.T) {
	for name, tc := range map[string]struct {
		usage string
		want  Usage
		ok    bool
	}{
		"rerank total only":       {`{"total_tokens":42}`, Usage{Input: 42}, true},
		"chat prompt wins":        {`{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}`, Usage{Input: 5, Output: 2}, true},
		"total not a number":      {`{"total_tokens":"42"}`, Usage{}, false},
		"cohere meta is no usage": {`{"billed_units":{"search_units":1}}`, Usage{}, false},
	} {
		t.Run(name, func(t *testing.T) {
			u, ok := ParseUsage(gjson.Parse(tc.usage))
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.want, u)
		})
	}
}

// FuzzEstimateRerank: any rerank-shaped body estimates without panicking
// and never negative.
func FuzzEstimateRerank(f *testing.F) {
	f.Add(`{"query":"abc","documents":["de",{"text":"x"},{"a":[1]}]}`)
	f.Add(`{"documents":[[["x"]]],"query":[1,2]}`)
	f.Add(`{"documents":{"text":"x"}}`)
	f.Fuzz(func(t *testing.T, body string) {
		if e := EstimateRequest([]byte(body), bytesCounter, nil); e.Input < 0 {
			t.Fatalf("negative estimate %d", e.Input)
		}
	})
}

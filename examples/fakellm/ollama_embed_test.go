package fakellm_test

import (
	"encoding/json"
	"math"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/streamgate/streamgate/examples/fakellm"
)

func TestOllamaEmbed(t *testing.T) {
	_, url := start(t, fakellm.Options{})
	type answer struct {
		Model           string
		Embeddings      [][]float32
		TotalDuration   int64 `json:"total_duration"`
		PromptEvalCount int   `json:"prompt_eval_count"`
		Error           string
	}
	call := func(body string, hdr map[string]string) (int, answer, string) {
		resp := post(t, url, "/api/embed", body, hdr)
		raw := readAll(t, resp)
		var a answer
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Fatalf("not JSON: %s", raw)
		}
		return resp.StatusCode, a, string(raw)
	}
	long := strings.Repeat("word ", fakellm.OllamaContextTokens)

	status, a, raw := call(`{"model":"nomic","input":["hello world!","other"]}`, nil)
	if status != 200 || a.Model != "nomic" || len(a.Embeddings) != 2 || a.PromptEvalCount != 4 || a.TotalDuration <= 0 {
		t.Fatalf("two strings: %d %s", status, raw)
	}
	if !reflect.DeepEqual(a.Embeddings[0], fakellm.Embed("hello world!")) {
		t.Errorf("the vector of a text is the one /v1/embeddings gives it")
	}
	status, a, raw = call(`{"model":"nomic","input":"hello world!","dimensions":3}`, nil)
	var norm float64
	for _, v := range a.Embeddings[0] {
		norm += float64(v) * float64(v)
	}
	if status != 200 || len(a.Embeddings) != 1 || len(a.Embeddings[0]) != 3 || math.Abs(norm-1) > 1e-5 || a.PromptEvalCount != 3 {
		t.Errorf("dimensions: %d %s, want one renormalized vector of 3", status, raw)
	}
	for name, body := range map[string]string{"empty string": `{"model":"nomic","input":""}`, "no input": `{"model":"nomic"}`, "null": `{"model":"nomic","input":null}`} {
		if status, _, raw := call(body, nil); status != 200 || raw != `{"model":"nomic","embeddings":[]}` {
			t.Errorf("%s: %d %s, want 200 with no embeddings", name, status, raw)
		}
	}
	for name, tc := range map[string]struct {
		body, hdr string
		status    int
		err       string
	}{
		"token ids":        {`{"model":"nomic","input":[1,2]}`, "", 400, "invalid input type"},
		"token arrays":     {`{"model":"nomic","input":[[1,2]]}`, "", 400, "invalid input type"},
		"number":           {`{"model":"nomic","input":5}`, "", 400, "invalid input type"},
		"no model":         {`{"input":"x"}`, "", 400, "invalid model name"},
		"not JSON":         {`{"model":`, "", 400, "unexpected end of JSON input"},
		"too long":         {`{"model":"nomic","truncate":false,"input":"` + long + `"}`, "", 400, "the input length exceeds the context length"},
		"injected failure": {`{"model":"nomic","input":"x"}`, "429", 429, "injected failure 429"},
	} {
		var hdr map[string]string
		if tc.hdr != "" {
			hdr = map[string]string{fakellm.HeaderFail: tc.hdr}
		}
		if status, a, raw := call(tc.body, hdr); status != tc.status || a.Error != tc.err {
			t.Errorf("%s: %d %s, want %d %q", name, status, raw, tc.status, tc.err)
		}
	}
	if status, a, raw := call(`{"model":"nomic","input":"`+long+`"}`, nil); status != 200 || a.PromptEvalCount != fakellm.OllamaContextTokens {
		t.Errorf("truncated by default: %d %s", status, raw)
	}
	if resp := post(t, url, "/api/embed", ``, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("empty body: %d", resp.StatusCode)
	}
}

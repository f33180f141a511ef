package fakellm_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/streamgate/streamgate/examples/fakellm"
)

func TestLegacyCompletions(t *testing.T) {
	_, url := start(t, fakellm.Options{Tokens: 2})
	body := map[string]any{"model": "davinci", "prompt": []string{"abcd", "efghijkl"}}
	checkObjects(t, []string{string(readAll(t, post(t, url, "/v1/completions", body, nil)))}, "cmpl-",
		`{"object":"text_completion","model":"davinci",
		  "choices":[{"text":"tok0 tok1 ","index":0,"logprobs":null,"finish_reason":"stop"}],
		  "usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`)

	body = map[string]any{"model": "davinci", "prompt": []int{7, 8, 9, 10}, "stream": true,
		"max_tokens": 1, "stream_options": map[string]any{"include_usage": true}}
	got := events(t, readAll(t, post(t, url, "/v1/completions", body, nil)))
	if got[len(got)-1] != "[DONE]" {
		t.Fatalf("last event = %q, want [DONE]", got[len(got)-1])
	}
	checkObjects(t, got[:len(got)-1], "cmpl-",
		`{"object":"text_completion","model":"davinci","usage":null,
		  "choices":[{"text":"tok0 ","index":0,"logprobs":null,"finish_reason":null}]}`,
		`{"object":"text_completion","model":"davinci","usage":null,
		  "choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"length"}]}`,
		`{"object":"text_completion","model":"davinci","choices":[],
		  "usage":{"prompt_tokens":4,"completion_tokens":1,"total_tokens":5}}`)

	resp := post(t, url, "/v1/completions", `{"model":"davinci","prompt":42}`, nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("numeric prompt: status = %d, want 400", resp.StatusCode)
	}
}

func TestEmbeddings(t *testing.T) {
	_, url := start(t, fakellm.Options{})
	var got struct {
		Object string
		Model  string
		Data   []struct {
			Object    string
			Index     int
			Embedding json.RawMessage
		}
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		}
	}
	for _, format := range []string{"float", "base64"} {
		body := map[string]any{"model": "embed-m", "input": []string{"hello world!", "hello world!", "other"}, "encoding_format": format}
		raw := readAll(t, post(t, url, "/v1/embeddings", body, nil))
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("cannot decode %s: %v", raw, err)
		}
		if got.Object != "list" || got.Model != "embed-m" || len(got.Data) != 3 || got.Usage.PromptTokens != 7 || got.Usage.TotalTokens != 7 {
			t.Fatalf("%s: unexpected response %s", format, raw)
		}
		vecs := make([][]float32, len(got.Data))
		for i, d := range got.Data {
			if d.Object != "embedding" || d.Index != i {
				t.Errorf("%s: data[%d] object %q index %d", format, i, d.Object, d.Index)
			}
			vecs[i] = decodeEmbedding(t, format, d.Embedding)
		}
		if !reflect.DeepEqual(vecs[0], fakellm.Embed("hello world!")) || !reflect.DeepEqual(vecs[0], vecs[1]) {
			t.Errorf("%s: equal inputs got %v and %v, want Embed(input)", format, vecs[0], vecs[1])
		}
		if reflect.DeepEqual(vecs[0], vecs[2]) {
			t.Errorf("%s: different inputs got the same embedding", format)
		}
		var norm float64
		for _, v := range vecs[2] {
			norm += float64(v) * float64(v)
		}
		if len(vecs[2]) != 8 || norm < 0.999 || norm > 1.001 {
			t.Errorf("%s: embedding %v, want a unit vector of 8 floats", format, vecs[2])
		}
	}
	for name, input := range map[string]string{
		"missing input":        ``,
		"empty string":         `,"input":""`,
		"empty string in list": `,"input":["a",""]`,
		"empty list":           `,"input":[]`,
		"strings and tokens":   `,"input":["a",[1,2]]`,
		"tokens and strings":   `,"input":[[1,2], "a"]`,
		"number":               `,"input":5`,
	} {
		resp := post(t, url, "/v1/embeddings", `{"model":"embed-m"`+input+`}`, nil)
		if body := readAll(t, resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"param":"input"`) {
			t.Errorf("%s: status %d body %s, want 400 naming input", name, resp.StatusCode, body)
		}
	}
	// Token input: an array of ids is one input, an array of arrays one per row.
	for input, want := range map[string]int{`[1,2,3]`: 1, `[[1,2],[3]]`: 2} {
		raw := readAll(t, post(t, url, "/v1/embeddings", `{"model":"embed-m","input":`+input+`}`, nil))
		if err := json.Unmarshal(raw, &got); err != nil || len(got.Data) != want || got.Usage.PromptTokens != 3 {
			t.Errorf("input %s: got %s, want %d embeddings and 3 prompt tokens", input, raw, want)
		}
	}
}

func TestModelsAndStatsEndpoints(t *testing.T) {
	s, url := start(t, fakellm.Options{Name: "backend-c", Tokens: 1})
	for _, m := range []string{"zeta", "alpha", "zeta"} {
		readAll(t, post(t, url, "/v1/chat/completions", chatBody(m, false, nil), nil))
	}
	resp, err := http.Get(url + "/v1/models")
	if err != nil {
		t.Fatalf("cannot list models: %v", err)
	}
	defer resp.Body.Close()
	var list struct {
		Object string
		Data   []map[string]any
	}
	if err := json.Unmarshal(readAll(t, resp), &list); err != nil {
		t.Fatalf("cannot decode model list: %v", err)
	}
	var ids []string
	for _, m := range list.Data {
		ids = append(ids, m["id"].(string))
		if m["object"] != "model" || m["owned_by"] != "fakellm" || m["created"] == nil {
			t.Errorf("model %v, want object model owned by fakellm with created", m)
		}
	}
	if list.Object != "list" || !reflect.DeepEqual(ids, []string{"alpha", "fake-model", "zeta"}) {
		t.Errorf("models = %s %v, want list of alpha, fake-model, zeta", list.Object, ids)
	}
	for path, want := range map[string]int{"/v1/models/alpha": 200, "/v1/models/fake-model": 200, "/v1/models/nope": 404} {
		r, err := http.Get(url + path)
		if err != nil {
			t.Fatalf("cannot get %s: %v", path, err)
		}
		r.Body.Close()
		if r.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, r.StatusCode, want)
		}
	}

	big := strings.Repeat("x", 3<<20)
	body := chatBody("big-model", false, map[string]any{"messages": []any{map[string]any{"role": "user", "content": big}}})
	raw, _ := json.Marshal(body)
	out := readAll(t, post(t, url, "/v1/chat/completions", string(raw), nil))
	if !bytes.Contains(out, []byte(`"prompt_tokens":786432`)) {
		t.Errorf("3 MiB prompt: response %s, want prompt_tokens 786432", out)
	}

	resp, err = http.Get(url + fakellm.StatsPath)
	if err != nil {
		t.Fatalf("cannot get stats: %v", err)
	}
	defer resp.Body.Close()
	var got fakellm.Stats
	if err := json.Unmarshal(readAll(t, resp), &got); err != nil {
		t.Fatalf("cannot decode stats: %v", err)
	}
	want := fakellm.Stats{Requests: 4, Completed: 4, LastModel: "big-model", LastBodyBytes: len(raw)}
	if got != want || s.Stats() != want {
		t.Errorf("stats over HTTP %+v, Stats() %+v; want %+v", got, s.Stats(), want)
	}
	if resp.Header.Get(fakellm.HeaderBackend) != "backend-c" {
		t.Errorf("stats response backend header = %q", resp.Header.Get(fakellm.HeaderBackend))
	}
}

// decodeEmbedding decodes an embedding in the given encoding format.
func decodeEmbedding(t *testing.T, format string, raw json.RawMessage) []float32 {
	t.Helper()
	var vec []float32
	if format == "float" {
		if err := json.Unmarshal(raw, &vec); err != nil {
			t.Fatalf("cannot decode float embedding %s: %v", raw, err)
		}
		return vec
	}
	var encoded string
	if err := json.Unmarshal(raw, &encoded); err != nil {
		t.Fatalf("cannot decode base64 embedding %s: %v", raw, err)
	}
	buf, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil || len(buf)%4 != 0 {
		t.Fatalf("cannot decode base64 embedding %q: %v", encoded, err)
	}
	for i := 0; i < len(buf); i += 4 {
		vec = append(vec, math.Float32frombits(binary.LittleEndian.Uint32(buf[i:])))
	}
	return vec
}

func TestHealth(t *testing.T) {
	s := fakellm.New(fakellm.Options{})
	srv := httptest.NewServer(s)
	defer srv.Close()
	get := func() int {
		resp, err := http.Get(srv.URL + fakellm.HealthPath)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get(); got != http.StatusOK {
		t.Fatalf("healthy server answered %d", got)
	}
	s.SetHealthy(false)
	if got := get(); got != http.StatusServiceUnavailable {
		t.Fatalf("unhealthy server answered %d", got)
	}
}

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/extproc/auth"
)

// nativeResponses is a backend that serves the Responses API itself (as
// vLLM does): a fixed answer with usage 21 in / 6 out, streamed or not.
// It records the bodies it got.
type nativeResponses struct {
	mu     sync.Mutex
	bodies []map[string]any
}

func (n *nativeResponses) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/responses" {
		http.Error(w, `{"error":{"message":"not found"}}`, http.StatusNotFound)
		return
	}
	var body map[string]any
	_ = json.NewDecoder(r.Body).Decode(&body)
	n.mu.Lock()
	n.bodies = append(n.bodies, body)
	n.mu.Unlock()
	resp := `{"id":"resp_n","object":"response","status":"completed","model":"served","output":[{"type":"message","id":"msg_n","status":"completed","role":"assistant","content":[{"type":"output_text","text":"native hi","annotations":[]}]}],"usage":{"input_tokens":21,"output_tokens":6,"total_tokens":27}}`
	if body["stream"] != true {
		w.Header().Set("content-type", "application/json")
		_, _ = io.WriteString(w, resp)
		return
	}
	w.Header().Set("content-type", "text/event-stream")
	fl := w.(http.Flusher)
	for i, ev := range []string{
		`{"type":"response.created","sequence_number":0,"response":{"id":"resp_n","object":"response","status":"in_progress","model":"served","output":[],"usage":null}}`,
		`{"type":"response.output_text.delta","sequence_number":1,"item_id":"msg_n","output_index":0,"content_index":0,"delta":"native "}`,
		`{"type":"response.output_text.delta","sequence_number":2,"item_id":"msg_n","output_index":0,"content_index":0,"delta":"hi"}`,
		`{"type":"response.completed","sequence_number":3,"response":` + resp + `}`,
	} {
		var typ struct{ Type string }
		_ = json.Unmarshal([]byte(ev), &typ)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ.Type, ev)
		if i < 3 {
			fl.Flush()
		}
	}
}

// TestResponsesPassThroughToNativeBackend: a backend with responses_api
// gets /v1/responses as sent (stateful fields included), and the limits
// settle from the Responses usage it reports, streamed or not.
func TestResponsesPassThroughToNativeBackend(t *testing.T) {
	fake := &nativeResponses{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	cfg := strings.Replace(fmt.Sprintf(responsesConfig, auth.HashKey(responsesKey)),
		"    protocol: openai\n    endpoints: [{{.BackendA}}]\n",
		"    protocol: openai\n    responses_api: true\n    endpoints: ["+strings.TrimPrefix(srv.URL, "http://")+"]\n", 1)
	e := startGateway(t, cfg)
	inBefore := metric(t, e, `streamgate_tokens_reconciled_total{direction="input"}`)
	outBefore := metric(t, e, `streamgate_tokens_reconciled_total{direction="output"}`)
	post := func(body string) string {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.gateway+"/v1/responses", bytes.NewReader([]byte(body)))
		require.NoError(t, err)
		req.Header.Set("authorization", "Bearer "+responsesKey)
		req.Header.Set("content-type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
		return string(b)
	}
	got := post(`{"model":"gpt-model","input":"hi","previous_response_id":"resp_0","store":true}`)
	assert.Contains(t, got, `"text":"native hi"`)
	got = post(`{"model":"gpt-model","input":"hi","stream":true}`)
	assert.Contains(t, got, "event: response.completed\n", "the native event stream passes as is")

	fake.mu.Lock()
	require.Len(t, fake.bodies, 2)
	assert.Equal(t, "resp_0", fake.bodies[0]["previous_response_id"], "stateful fields reach a backend that keeps state")
	assert.Equal(t, "gpt-upstream", fake.bodies[0]["model"])
	_, hasStreamOptions := fake.bodies[1]["stream_options"]
	assert.False(t, hasStreamOptions, "no chat stream_options on a Responses request")
	fake.mu.Unlock()

	waitMetric(t, e, "streamgate_reservations_outstanding", 0)
	assert.Equal(t, 2*6.0, metric(t, e, `streamgate_tokens_reconciled_total{direction="output"}`)-outBefore)
	assert.Equal(t, 2*21.0, metric(t, e, `streamgate_tokens_reconciled_total{direction="input"}`)-inBefore)
}

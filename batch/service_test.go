package batch

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/bridge"
)

// fakeGateway answers chat completions: model "bad" gets 404, a message
// "slow" waits for release. It counts calls per message content.
type fakeGateway struct {
	mu      sync.Mutex
	calls   map[string]int
	keys    []string
	release chan struct{}
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model    string `json:"model"`
		Messages []struct {
			Content string `json:"content"`
		} `json:"messages"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	msg := req.Messages[0].Content
	g.mu.Lock()
	g.calls[msg]++
	g.keys = append(g.keys, r.Header.Get("authorization"))
	g.mu.Unlock()
	if strings.HasPrefix(msg, "slow") {
		select {
		case <-g.release:
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("x-request-id", "req-"+msg)
	w.Header().Set("content-type", "application/json")
	if req.Model == "bad" {
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":{"message":"The model does not exist.","type":"invalid_request_error","code":"model_not_found","param":"model"}}`)
		return
	}
	fmt.Fprintf(w, `{"id":"c","object":"chat.completion","model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"echo %s"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`, req.Model, msg)
}

func (g *fakeGateway) count(msg string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[msg]
}

// harness is a batch service over store dir, behind a test server that
// sets the tenant header from the client's bearer key ("key-T" → T).
type harness struct {
	svc    *Service
	runner *Runner
	srv    *httptest.Server
	cancel context.CancelFunc
}

func newHarness(t *testing.T, dir, gatewayURL string) *harness {
	t.Helper()
	store, err := OpenStore(dir)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{Store: store, GatewayURL: gatewayURL, Priority: "sheddable", MaxAttempts: 3, Backoff: 10 * time.Millisecond,
		Timeout: 10 * time.Second, Window: bridge.NewWindow(8), Client: &http.Client{}, Log: slog.New(slog.DiscardHandler), Now: time.Now,
		Key: func(tenant string) (string, bool) { return "gw-" + tenant, tenant != "nokey" }}
	svc := &Service{Runner: r, TenantHeader: "x-streamgate-tenant", Ctx: ctx}
	h := svc.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		req.Header.Set("x-streamgate-tenant", strings.TrimPrefix(req.Header.Get("authorization"), "Bearer key-"))
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(func() { cancel(); r.Wait(); srv.Close() })
	return &harness{svc: svc, runner: r, srv: srv, cancel: cancel}
}

func (h *harness) client(tenant string) openai.Client {
	return openai.NewClient(option.WithBaseURL(h.srv.URL+"/v1/"), option.WithAPIKey("key-"+tenant), option.WithMaxRetries(0))
}

func chatLines(msgs ...string) string {
	var b strings.Builder
	for i, m := range msgs {
		model := "m"
		if m == "bad" {
			model = "bad"
		}
		fmt.Fprintf(&b, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":%q,"messages":[{"role":"user","content":%q}]}}`+"\n", i, model, m)
	}
	return b.String()
}

func upload(t *testing.T, c openai.Client, content string) *openai.FileObject {
	t.Helper()
	f, err := c.Files.New(context.Background(), openai.FileNewParams{File: openai.File(strings.NewReader(content), "in.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	return f
}

func create(t *testing.T, c openai.Client, fileID string) *openai.Batch {
	t.Helper()
	b, err := c.Batches.New(context.Background(), openai.BatchNewParams{InputFileID: fileID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h, Metadata: map[string]string{"job": "nightly"}})
	require.NoError(t, err)
	return b
}

func waitStatus(t *testing.T, c openai.Client, id string, want openai.BatchStatus) *openai.Batch {
	t.Helper()
	var b *openai.Batch
	require.Eventually(t, func() bool {
		var err error
		b, err = c.Batches.Get(context.Background(), id)
		require.NoError(t, err)
		return b.Status == want
	}, 10*time.Second, 20*time.Millisecond, "batch %s never reached %s", id, want)
	return b
}

func content(t *testing.T, c openai.Client, id string) []map[string]any {
	t.Helper()
	resp, err := c.Files.Content(context.Background(), id)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		out = append(out, m)
	}
	return out
}

func TestBatchWithOpenAIGo(t *testing.T) {
	gw := &fakeGateway{calls: map[string]int{}}
	gws := httptest.NewServer(gw)
	defer gws.Close()
	h := newHarness(t, t.TempDir(), gws.URL)
	c := h.client("acme")
	f := upload(t, c, chatLines("hello", "bad", "world"))
	assert.Equal(t, "batch", string(f.Purpose))
	b := create(t, c, f.ID)
	assert.Equal(t, "nightly", b.Metadata["job"])
	b = waitStatus(t, c, b.ID, openai.BatchStatusCompleted)
	assert.Equal(t, int64(3), b.RequestCounts.Total)
	assert.Equal(t, int64(2), b.RequestCounts.Completed)
	assert.Equal(t, int64(1), b.RequestCounts.Failed)
	assert.NotZero(t, b.InProgressAt)
	assert.NotZero(t, b.FinalizingAt)
	assert.NotZero(t, b.CompletedAt)

	out := content(t, c, b.OutputFileID)
	require.Len(t, out, 2)
	assert.Equal(t, "r0", out[0]["custom_id"])
	resp := out[0]["response"].(map[string]any)
	assert.InDelta(t, 200, resp["status_code"], 0)
	assert.Equal(t, "req-hello", resp["request_id"])
	assert.Nil(t, out[0]["error"])
	assert.Contains(t, out[0]["id"], "batch_req_")
	errs := content(t, c, b.ErrorFileID)
	require.Len(t, errs, 1)
	assert.Equal(t, "r1", errs[0]["custom_id"])
	assert.InDelta(t, 404, errs[0]["response"].(map[string]any)["status_code"], 0)
	assert.Equal(t, []string{"gw-acme", "gw-acme", "gw-acme"}, []string{strings.TrimPrefix(gw.keys[0], "Bearer "), strings.TrimPrefix(gw.keys[1], "Bearer "), strings.TrimPrefix(gw.keys[2], "Bearer ")})

	// Another tenant sees none of it.
	other := h.client("globex")
	_, err := other.Batches.Get(context.Background(), b.ID)
	var apiErr *openai.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusNotFound, apiErr.StatusCode)
	_, err = other.Files.Content(context.Background(), b.OutputFileID)
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusNotFound, apiErr.StatusCode)
	page, err := other.Batches.List(context.Background(), openai.BatchListParams{})
	require.NoError(t, err)
	assert.Empty(t, page.Data)

	// List pages with after/limit.
	b2 := create(t, c, f.ID)
	waitStatus(t, c, b2.ID, openai.BatchStatusCompleted)
	page, err = c.Batches.List(context.Background(), openai.BatchListParams{Limit: openai.Int(1)})
	require.NoError(t, err)
	require.Len(t, page.Data, 1)
	assert.True(t, page.HasMore)
	page, err = c.Batches.List(context.Background(), openai.BatchListParams{Limit: openai.Int(1), After: openai.String(page.Data[0].ID)})
	require.NoError(t, err)
	require.Len(t, page.Data, 1)
	assert.False(t, page.HasMore)

	// Files: get, list, delete.
	got, err := c.Files.Get(context.Background(), f.ID)
	require.NoError(t, err)
	assert.Equal(t, f.Bytes, got.Bytes)
	files, err := c.Files.List(context.Background(), openai.FileListParams{Purpose: openai.String("batch")})
	require.NoError(t, err)
	assert.Len(t, files.Data, 1)
	del, err := c.Files.Delete(context.Background(), f.ID)
	require.NoError(t, err)
	assert.True(t, del.Deleted)
	_, err = c.Files.Get(context.Background(), f.ID)
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusNotFound, apiErr.StatusCode)
}

func TestBatchRefusals(t *testing.T) {
	h := newHarness(t, t.TempDir(), "http://127.0.0.1:1")
	c := h.client("acme")
	_, err := c.Files.New(context.Background(), openai.FileNewParams{File: openai.File(strings.NewReader(chatLines("a")+"{oops\n"), "in.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch})
	var apiErr *openai.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusBadRequest, apiErr.StatusCode)
	assert.Contains(t, apiErr.Message, "Line 2")
	_, err = c.Batches.New(context.Background(), openai.BatchNewParams{InputFileID: "file-nope", Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusNotFound, apiErr.StatusCode)
	f := upload(t, c, chatLines("a"))
	_, err = c.Batches.New(context.Background(), openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1Embeddings, CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusBadRequest, apiErr.StatusCode)
	assert.Contains(t, apiErr.Message, "Line 1")
	nokey := h.client("nokey")
	f2 := upload(t, nokey, chatLines("a"))
	_, err = nokey.Batches.New(context.Background(), openai.BatchNewParams{InputFileID: f2.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusForbidden, apiErr.StatusCode)
}

func TestBatchCancel(t *testing.T) {
	gw := &fakeGateway{calls: map[string]int{}, release: make(chan struct{})}
	gws := httptest.NewServer(gw)
	defer gws.Close()
	defer close(gw.release)
	h := newHarness(t, t.TempDir(), gws.URL)
	c := h.client("acme")
	f := upload(t, c, chatLines("fast", "slow1", "slow2"))
	b := create(t, c, f.ID)
	require.Eventually(t, func() bool { return gw.count("slow1") == 1 && gw.count("fast") == 1 }, 5*time.Second, 10*time.Millisecond)
	_, err := c.Files.Delete(context.Background(), f.ID)
	var apiErr *openai.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusConflict, apiErr.StatusCode, "the input of a running batch stays")
	require.Eventually(t, func() bool {
		b, _ := c.Batches.Get(context.Background(), b.ID)
		return b.RequestCounts.Completed == 1
	}, 5*time.Second, 10*time.Millisecond)
	got, err := c.Batches.Cancel(context.Background(), b.ID)
	require.NoError(t, err)
	assert.Contains(t, []openai.BatchStatus{openai.BatchStatusCancelling, openai.BatchStatusCancelled}, got.Status)
	got = waitStatus(t, c, b.ID, openai.BatchStatusCancelled)
	assert.NotZero(t, got.CancellingAt)
	assert.NotZero(t, got.CancelledAt)
	assert.Equal(t, int64(1), got.RequestCounts.Completed)
	out := content(t, c, got.OutputFileID)
	require.Len(t, out, 1)
	assert.Equal(t, "r0", out[0]["custom_id"])
	_, err = c.Batches.Cancel(context.Background(), b.ID)
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusConflict, apiErr.StatusCode)
}

// TestBatchResumesAfterRestart stops the service while two lines hang,
// opens the store again and checks that finished lines do not run again.
func TestBatchResumesAfterRestart(t *testing.T) {
	gw := &fakeGateway{calls: map[string]int{}, release: make(chan struct{})}
	gws := httptest.NewServer(gw)
	defer gws.Close()
	dir := t.TempDir()
	h := newHarness(t, dir, gws.URL)
	c := h.client("acme")
	f := upload(t, c, chatLines("a", "b", "slow1", "slow2"))
	b := create(t, c, f.ID)
	require.Eventually(t, func() bool { return gw.count("slow1") == 1 && gw.count("slow2") == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		b, _ := c.Batches.Get(context.Background(), b.ID)
		return b.RequestCounts.Completed == 2
	}, 5*time.Second, 10*time.Millisecond)
	h.cancel() // a shutdown: the hanging lines are abandoned, not recorded
	h.runner.Wait()
	close(gw.release)

	h2 := newHarness(t, dir, gws.URL)
	h2.runner.Resume(h2.svc.Ctx)
	c2 := h2.client("acme")
	got := waitStatus(t, c2, b.ID, openai.BatchStatusCompleted)
	assert.Equal(t, int64(4), got.RequestCounts.Completed)
	assert.Len(t, content(t, c2, got.OutputFileID), 4)
	for msg, n := range map[string]int{"a": 1, "b": 1, "slow1": 2, "slow2": 2} {
		assert.Equal(t, n, gw.count(msg), msg)
	}
}

// TestBatchExpires: a batch whose completion window passed ends expired,
// its lines not run going to the error file as batch_expired.
func TestBatchExpires(t *testing.T) {
	gw := &fakeGateway{calls: map[string]int{}}
	gws := httptest.NewServer(gw)
	defer gws.Close()
	h := newHarness(t, t.TempDir(), gws.URL)
	c := h.client("acme")
	f := upload(t, c, chatLines("a", "b"))
	past := time.Now().Add(-time.Minute).Unix()
	b := &Batch{ID: "batch_old", Object: "batch", Endpoint: "/v1/chat/completions", InputFileID: f.ID, CompletionWindow: CompletionWindow,
		Status: Validating, CreatedAt: past, ExpiresAt: &past, Tenant: "acme"}
	require.NoError(t, h.runner.Store.SaveBatch(b))
	h.runner.Start(h.svc.Ctx, b.ID)
	got := waitStatus(t, c, b.ID, openai.BatchStatusExpired)
	assert.NotZero(t, got.ExpiredAt)
	assert.Equal(t, int64(2), got.RequestCounts.Failed)
	errs := content(t, c, got.ErrorFileID)
	require.Len(t, errs, 2)
	assert.Equal(t, "batch_expired", errs[0]["error"].(map[string]any)["code"])
	assert.Zero(t, gw.count("a")+gw.count("b"))
}

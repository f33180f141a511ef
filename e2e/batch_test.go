package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/examples/fakellm"
	"github.com/streamgate/streamgate/extproc/auth"
)

const (
	batchKeyAcme   = "sk-e2e-batch-acme-4f1c9a"
	batchKeyGlobex = "sk-e2e-batch-globex-8d2e7b"
)

// batchConfig: gpt-batch on backend A, gpt-slow on a fakellm that answers
// after 5 s, two tenants granted the Batch API's services, and the batch
// service with each tenant's key. %[1]s: the slow backend, %[2]s/%[3]s:
// the key hashes, %[4]s: the batch listener, %[5]s: its directory.
const batchConfig = listeners + `backends:
  - name: oai
    protocol: openai
    endpoints: [{{.BackendA}}]
  - name: slow
    protocol: openai
    endpoints: [%[1]s]
models:
  - {name: gpt-batch, backend: oai}
  - {name: gpt-slow, backend: slow}
auth:
  tenants:
    - name: acme
      models: ["*"]
      services: [{name: batch, operations: ["*"]}, {name: batch-files, operations: ["*"]}]
      api_keys: [{hash: %[2]s}]
    - name: globex
      models: ["*"]
      services: [{name: batch, operations: ["*"]}, {name: batch-files, operations: ["*"]}]
      api_keys: [{hash: %[3]s}]
batch:
  listen: %[4]s
  dir: %[5]s
  backoff: 100ms
  credentials:
    - {name: acme, env: SG_E2E_BATCH_ACME}
    - {name: globex, env: SG_E2E_BATCH_GLOBEX}
`

type batchLine struct {
	ID       string `json:"id"`
	CustomID string `json:"custom_id"`
	Response *struct {
		StatusCode int             `json:"status_code"`
		RequestID  string          `json:"request_id"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
	Error *struct{ Code, Message string } `json:"error"`
}

type batchPyOut struct {
	File    struct{ ID, Purpose, Status string }
	Created struct {
		Status   string
		Metadata map[string]string
	}
	Batch struct {
		ID, Status   string
		Seen         []string
		Counts       struct{ Total, Completed, Failed int }
		InProgressAt *int64 `json:"in_progress_at"`
		FinalizingAt *int64 `json:"finalizing_at"`
		CompletedAt  *int64 `json:"completed_at"`
		OutputFileID string `json:"output_file_id"`
		ErrorFileID  string `json:"error_file_id"`
	}
	Output, Errors []batchLine
	OtherRetrieve  *responsesError `json:"other_retrieve"`
	OtherContent   *responsesError `json:"other_content"`
	OtherCancel    *responsesError `json:"other_cancel"`
	OtherList      int             `json:"other_list"`
	CancelStatus   string          `json:"cancel_status"`
	Cancelled      struct {
		Status       string
		Seen         []string
		CancellingAt *int64 `json:"cancelling_at"`
		CancelledAt  *int64 `json:"cancelled_at"`
		Counts       struct{ Total, Completed, Failed int }
	}
	List, List2 struct {
		IDs     []string
		HasMore bool `json:"has_more"`
	}
	Files        []string
	BadUpload    *responsesError `json:"bad_upload"`
	UnknownBatch *responsesError `json:"unknown_batch"`
	Deleted      bool
	AfterDelete  *responsesError `json:"after_delete"`
}

// TestOpenAISDKBatchAPI: the official SDK uploads a batch file, creates a
// batch, polls it to completed and reads the output and error files (an
// unknown model's line fails on purpose), cancels a slow batch, lists
// batches; another tenant gets 404 for all of it; a bad file gets 400 with
// the line number; every line is metered as a direct request would be.
func TestOpenAISDKBatchAPI(t *testing.T) {
	py := pythonSDKs(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	slow := fakellm.New(fakellm.Options{Name: "slow", TTFT: 5 * time.Second})
	go func() { _ = http.Serve(lis, slow) }()
	t.Cleanup(func() { lis.Close() })
	port, err := freePorts(1)
	require.NoError(t, err)
	t.Setenv("SG_E2E_BATCH_ACME", batchKeyAcme)
	t.Setenv("SG_E2E_BATCH_GLOBEX", batchKeyGlobex)
	e := startGateway(t, fmt.Sprintf(batchConfig, lis.Addr().String(), auth.HashKey(batchKeyAcme), auth.HashKey(batchKeyGlobex), port[0], t.TempDir()))

	cmd := exec.CommandContext(t.Context(), py, filepath.Join("py", "batch_client.py"), e.gateway, batchKeyAcme, batchKeyGlobex, "gpt-batch", "gpt-slow")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	require.NoError(t, err, "batch_client.py failed:\n%s", stderr.String())
	var out batchPyOut
	require.NoError(t, json.Unmarshal(stdout, &out), "batch_client.py printed %s", stdout)

	assert.Equal(t, "batch", out.File.Purpose)
	assert.Equal(t, "validating", out.Created.Status)
	assert.Equal(t, "e2e", out.Created.Metadata["job"])
	b := out.Batch
	assert.Equal(t, "completed", b.Status, "statuses seen: %v", b.Seen)
	assert.Equal(t, 3, b.Counts.Total)
	assert.Equal(t, 2, b.Counts.Completed)
	assert.Equal(t, 1, b.Counts.Failed)
	assert.NotNil(t, b.InProgressAt)
	assert.NotNil(t, b.FinalizingAt)
	assert.NotNil(t, b.CompletedAt)
	require.Len(t, out.Output, 2)
	for _, l := range out.Output {
		assert.Contains(t, []string{"ok-1", "ok-2"}, l.CustomID)
		require.NotNil(t, l.Response)
		assert.Equal(t, http.StatusOK, l.Response.StatusCode)
		assert.NotEmpty(t, l.Response.RequestID, "Envoy's x-request-id")
		assert.Contains(t, string(l.Response.Body), `"chat.completion"`)
		assert.Nil(t, l.Error)
		assert.True(t, strings.HasPrefix(l.ID, "batch_req_"))
	}
	require.Len(t, out.Errors, 1)
	assert.Equal(t, "bad-model", out.Errors[0].CustomID)
	require.NotNil(t, out.Errors[0].Response)
	assert.Equal(t, http.StatusNotFound, out.Errors[0].Response.StatusCode, "the gateway's own refusal of an unknown model")
	assert.Contains(t, string(out.Errors[0].Response.Body), `"error"`)

	for name, e := range map[string]*responsesError{"retrieve": out.OtherRetrieve, "content": out.OtherContent, "cancel": out.OtherCancel, "unknown": out.UnknownBatch, "deleted": out.AfterDelete} {
		require.NotNil(t, e, name)
		assert.Equal(t, "NotFoundError", e.Class, name)
	}
	assert.Zero(t, out.OtherList)

	assert.Contains(t, []string{"cancelling", "cancelled"}, out.CancelStatus)
	assert.Equal(t, "cancelled", out.Cancelled.Status, "statuses seen: %v", out.Cancelled.Seen)
	assert.NotNil(t, out.Cancelled.CancellingAt)
	assert.NotNil(t, out.Cancelled.CancelledAt)
	assert.Zero(t, out.Cancelled.Counts.Completed, "the slow lines were stopped, not finished")

	require.Len(t, out.List.IDs, 1)
	assert.True(t, out.List.HasMore)
	require.Len(t, out.List2.IDs, 1)
	assert.NotEqual(t, out.List.IDs[0], out.List2.IDs[0])
	assert.False(t, out.List2.HasMore)
	assert.Len(t, out.Files, 2, "the two uploads (result files have purpose batch_output)")

	require.NotNil(t, out.BadUpload)
	assert.Equal(t, "BadRequestError", out.BadUpload.Class)
	assert.Contains(t, out.BadUpload.Message, "Line 2")
	assert.True(t, out.Deleted)

	// Metered per line as direct requests: acme's two answered lines.
	assert.Eventually(t, func() bool { return requestsCounted(t, e, "acme", "gpt-batch") == 2 }, 5*time.Second, 50*time.Millisecond,
		"streamgate_requests_total of acme on gpt-batch: %d", requestsCounted(t, e, "acme", "gpt-batch"))
}

// requestsCounted reads streamgate_requests_total for tenant and model.
func requestsCounted(t *testing.T, e *env, tenant, model string) int {
	t.Helper()
	resp, err := http.Get(e.metrics + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	re := regexp.MustCompile(`(?m)^streamgate_requests_total\{([^}]*)\} (\d+)`)
	n := 0
	for _, m := range re.FindAllStringSubmatch(string(data), -1) {
		if strings.Contains(m[1], `tenant="`+tenant+`"`) && strings.Contains(m[1], `model="`+model+`"`) {
			v, _ := strconv.Atoi(m[2])
			n += v
		}
	}
	return n
}

// TestBatchResumesAcrossGatewayRestart: a gateway stopped while a batch's
// lines run resumes it on its next start from batch.dir; lines answered
// before the stop are not sent again, lines cut by the stop are.
func TestBatchResumesAcrossGatewayRestart(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	slow := fakellm.New(fakellm.Options{Name: "slow", TTFT: time.Second})
	go func() { _ = http.Serve(lis, slow) }()
	t.Cleanup(func() { lis.Close() })
	port, err := freePorts(1)
	require.NoError(t, err)
	t.Setenv("SG_E2E_BATCH_ACME", batchKeyAcme)
	t.Setenv("SG_E2E_BATCH_GLOBEX", batchKeyGlobex)
	cfg := fmt.Sprintf(batchConfig, lis.Addr().String(), auth.HashKey(batchKeyAcme), auth.HashKey(batchKeyGlobex), port[0], t.TempDir())

	first := &env{logs: &syncBuffer{}, done: make(chan error, 1), backendA: gw.backendA, backendB: gw.backendB}
	require.NoError(t, first.start(cfg), first.logs.String())
	c := openai.NewClient(option.WithBaseURL(first.gateway+"/v1/"), option.WithAPIKey(batchKeyAcme), option.WithMaxRetries(0))
	var in strings.Builder
	const lines = 8
	for i := range lines {
		fmt.Fprintf(&in, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-slow","max_tokens":4,"messages":[{"role":"user","content":"x"}]}}`+"\n", i)
	}
	f, err := c.Files.New(t.Context(), openai.FileNewParams{File: openai.File(strings.NewReader(in.String()), "in.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	b, err := c.Batches.New(t.Context(), openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		got, err := c.Batches.Get(t.Context(), b.ID)
		return err == nil && got.RequestCounts.Completed >= 1
	}, 20*time.Second, 50*time.Millisecond)
	first.stop()
	before := slow.Stats()
	require.Less(t, before.Completed, int64(lines), "the stop came before the batch finished")

	second := startGateway(t, cfg)
	c = openai.NewClient(option.WithBaseURL(second.gateway+"/v1/"), option.WithAPIKey(batchKeyAcme), option.WithMaxRetries(0))
	var got *openai.Batch
	require.Eventually(t, func() bool {
		got, err = c.Batches.Get(t.Context(), b.ID)
		return err == nil && got.Status == openai.BatchStatusCompleted
	}, 30*time.Second, 100*time.Millisecond)
	assert.Equal(t, int64(lines), got.RequestCounts.Completed)
	resp, err := c.Files.Content(t.Context(), got.OutputFileID)
	require.NoError(t, err)
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	ids := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var bl batchLine
		require.NoError(t, json.Unmarshal([]byte(l), &bl))
		ids[bl.CustomID] = true
	}
	assert.Len(t, ids, lines, "every line answered once in the output file")
	after := slow.Stats()
	// Sent again: only the lines the stop cut (the backend saw their client go away).
	assert.Equal(t, int64(lines), after.Requests-after.Cancelled, "requests %d, cut by the stop %d", after.Requests, after.Cancelled)
	t.Logf("before the stop: %d answered, %d cut; after the restart %d requests in all", before.Completed, after.Cancelled, after.Requests)
}

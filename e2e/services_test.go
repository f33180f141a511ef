package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/extproc/auth"
)

// Secrets of the services gateway. None may appear in a log line.
const (
	svcKeyAcme = "sk-e2e-svc-acme-5b7d9f1a3c"
	svcKeyBeta = "sk-e2e-svc-beta-8e0a2c4e6b"
)

// chromaOperations are the rules docs/services.md explains: what the
// official client calls, per operation, each scoped to the Chroma tenant
// named like the caller's tenant.
const chromaOperations = `    operations:
      - name: meta                 # the client's start-up and health calls
        methods: [GET]
        paths: [/api/v2/heartbeat, /api/v2/version, /api/v2/pre-flight-checks, /api/v2/auth/identity]
      - name: tenant               # the client checks its tenant and database
        methods: [GET]
        paths: ["/api/v2/tenants/{tenant}", "/api/v2/tenants/{tenant}/databases/*"]
      - name: list                 # list, get by name, count
        methods: [GET]
        paths: ["/api/v2/tenants/{tenant}/databases/*/collections", "/api/v2/tenants/{tenant}/databases/*/collections/**", "/api/v2/tenants/{tenant}/databases/*/collections_count"]
      - name: query
        methods: [POST]
        paths: ["/api/v2/tenants/{tenant}/databases/*/collections/*/query", "/api/v2/tenants/{tenant}/databases/*/collections/*/get", "/api/v2/tenants/{tenant}/databases/*/collections/*/search"]
      - name: create               # collection names start with the tenant's
        methods: [POST]
        paths: ["/api/v2/tenants/{tenant}/databases/*/collections"]
        body: {field: name, match: "{tenant}-*"}
      - name: write
        methods: [POST, PUT, DELETE]
        paths: ["/api/v2/tenants/{tenant}/databases/*/collections/*", "/api/v2/tenants/{tenant}/databases/*/collections/*/add", "/api/v2/tenants/{tenant}/databases/*/collections/*/update", "/api/v2/tenants/{tenant}/databases/*/collections/*/upsert", "/api/v2/tenants/{tenant}/databases/*/collections/*/delete"]
`

// chromaConfig mounts a Chroma server (%[1]s) on /chroma/ for two tenants:
// acme may do everything, beta only read.
const chromaConfig = listeners + `backends:
  - name: chroma
    protocol: http
    endpoints: [%[1]s]
services:
  - name: chroma
    backend: chroma
    path_prefix: /chroma/
    rewrite: /
` + chromaOperations + `auth:
  tenants:
    - name: acme
      services: [{name: chroma, operations: ["*"]}]
      api_keys: [{hash: %[2]s}]
    - name: beta
      services: [{name: chroma, operations: [meta, tenant, list, query]}]
      api_keys: [{hash: %[3]s}]
limits:
  tenants:
    - name: "*"
      services: [{name: chroma, requests_per_minute: 1000, concurrent_requests: 4}]
`

// chromaPython returns the venv's python and chroma when chromadb is
// installed; it skips (fails under STREAMGATE_REQUIRE_ALL=1) otherwise.
func chromaPython(t *testing.T) (py, chroma string) {
	return venvTool(t, "chroma", "chromadb", "chromadb==1.5.9")
}

// startChroma runs `chroma run` on a free port with a fresh data directory
// until the test ends and returns its address once its heartbeat answers.
func startChroma(t *testing.T, chroma string) string {
	return startVenvServer(t, "chroma", chroma, []string{"run", "--path", dirArg, "--host", "127.0.0.1", "--port", portArg}, func(addr string) bool {
		resp, err := http.Get("http://" + addr + "/api/v2/heartbeat")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// chromaAdmin sets Chroma up directly, as its operator would: one Chroma
// tenant per gateway tenant, and a collection for the read-only tenant.
func chromaAdmin(t *testing.T, addr string) {
	t.Helper()
	post := func(path, body string) {
		resp, err := http.Post("http://"+addr+"/api/v2"+path, "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
	for _, tenant := range []string{"acme", "beta"} {
		post("/tenants", `{"name":"`+tenant+`"}`)
		post("/tenants/"+tenant+"/databases", `{"name":"default_database"}`)
	}
	post("/tenants/beta/databases/default_database/collections", `{"name":"beta-notes"}`)
}

// TestChromaThroughGateway drives a real Chroma server through real Envoy
// with the official chromadb client: a tenant adds and queries, a
// read-only tenant is refused writes, neither reaches the other's Chroma
// tenant, a collection named for another tenant cannot be created, and no
// key means 401.
func TestChromaThroughGateway(t *testing.T) {
	py, chroma := chromaPython(t)
	addr := startChroma(t, chroma)
	chromaAdmin(t, addr)
	g := startGateway(t, fmt.Sprintf(chromaConfig, addr, auth.HashKey(svcKeyAcme), auth.HashKey(svcKeyBeta)))

	cmd := exec.CommandContext(t.Context(), py, filepath.Join("py", "chroma_client.py"), g.gateway+"/chroma", svcKeyAcme, svcKeyBeta)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	require.NoError(t, err, "chroma_client.py failed:\n%s", stderr.String())
	type refused struct {
		OK    any
		Error struct{ Code, Message string }
	}
	var out struct {
		WriterQuery struct {
			IDs       [][]string
			Documents [][]string
			Count     int
		} `json:"writer_query"`
		WriterOtherName   refused `json:"writer_other_name"`
		ReaderQuery       []any   `json:"reader_query"`
		ReaderAdd         refused `json:"reader_add"`
		ReaderOtherTenant refused `json:"reader_other_tenant"`
		ReaderOtherName   refused `json:"reader_other_name"`
		NoKey             refused `json:"no_key"`
	}
	require.NoError(t, json.Unmarshal(stdout, &out), "chroma_client.py printed %s", stdout)

	assert.Equal(t, [][]string{{"a"}}, out.WriterQuery.IDs)
	assert.Equal(t, [][]string{{"apples are red"}}, out.WriterQuery.Documents)
	assert.Equal(t, 2, out.WriterQuery.Count)
	assert.Equal(t, "out_of_scope", out.WriterOtherName.Error.Code, "a collection named for another tenant: %+v", out.WriterOtherName)
	assert.Len(t, out.ReaderQuery, 1, "the read-only tenant queries its own collection")
	assert.Equal(t, "permission_denied", out.ReaderAdd.Error.Code, "%+v", out.ReaderAdd)
	assert.Contains(t, out.ReaderAdd.Error.Message, "chroma.write")
	// The client checks its tenant when it starts and words the 403 itself.
	assert.Contains(t, out.ReaderOtherTenant.Error.Message, "Could not connect to tenant acme", "%+v", out.ReaderOtherTenant)
	waitLogLine(t, g, func(l map[string]any) bool {
		return l["status"] == 403.0 && l["details"] == "streamgate_out_of_scope" && l["upstream_cluster"] == "chroma"
	})
	assert.Nil(t, out.ReaderOtherName.OK, "another tenant's collection is not in the reader's Chroma tenant")
	assert.Equal(t, "invalid_api_key", out.NoKey.Error.Code, "%+v", out.NoKey)

	// The access log names service and operation; metrics count them.
	line := waitLogLine(t, g, func(l map[string]any) bool {
		return l["service"] == "chroma" && l["operation"] == "query" && l["tenant"] == "acme"
	})
	assert.Equal(t, 200.0, line["status"])
	metrics := waitSeries(t, g, `streamgate_service_requests_total{operation="write",service="chroma",status="201",tenant="acme"}`)
	assert.Contains(t, metrics, `streamgate_service_requests_total{operation="write",service="chroma",status="403",tenant="beta"} 1`)
	assert.Contains(t, metrics, `streamgate_service_bytes_total{direction="request",operation="write",service="chroma",tenant="acme"}`)
	assert.NotContains(t, g.logs.String(), svcKeyAcme)
	assert.NotContains(t, g.logs.String(), svcKeyBeta)
}

// waitSeries polls the gateway's /metrics until it holds series (the
// service log arrives within Envoy's flush interval) and returns them.
func waitSeries(t *testing.T, e *env, series string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(e.metrics + "/metrics")
		require.NoError(t, err)
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		resp.Body.Close()
		if strings.Contains(b.String(), series) {
			return b.String()
		}
		require.True(t, time.Now().Before(deadline), "no metric %s in:\n%s", series, b.String())
		time.Sleep(100 * time.Millisecond)
	}
}

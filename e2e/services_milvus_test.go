package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/extproc/auth"
)

// milvusService is the prefix of Milvus's gRPC API (every method pymilvus
// calls is on this one service).
const milvusService = "/milvus.proto.milvus.MilvusService/"

// milvusConfig mounts Milvus Lite (%[1]s, gRPC over HTTP/2 cleartext) on
// its gRPC service path: acme may call every method, beta only the read
// methods (the client's connect and describe calls, search and query).
const milvusConfig = listeners + `backends:
  - name: milvus
    protocol: http
    http2: true
    endpoints: [%[1]s]
services:
  - name: milvus
    backend: milvus
    path_prefix: ` + milvusService + `
    operations:
      - name: read
        methods: [POST]
        paths: ["` + milvusService + `Connect", "` + milvusService + `GetVersion", "` + milvusService + `CheckHealth", "` + milvusService + `Describe*", "` + milvusService + `Has*", "` + milvusService + `List*", "` + milvusService + `Show*", "` + milvusService + `Get*", "` + milvusService + `Search", "` + milvusService + `HybridSearch", "` + milvusService + `Query"]
      - name: write                # create, index, load, insert, upsert, delete, drop, flush
        methods: [POST]
        paths: ["` + milvusService + `*"]
auth:
  tenants:
    - name: acme
      services: [{name: milvus, operations: ["*"]}]
      api_keys: [{hash: %[2]s}]
    - name: beta
      services: [{name: milvus, operations: [read]}]
      api_keys: [{hash: %[3]s}]
limits:
  tenants:
    - name: "*"
      services: [{name: milvus, requests_per_minute: 1000, concurrent_requests: 4}]
`

// milvusPython returns the venv's python and milvus-lite when milvus-lite
// and pymilvus are installed; it skips (fails under
// STREAMGATE_REQUIRE_ALL=1) otherwise.
func milvusPython(t *testing.T) (py, server string) {
	return venvTool(t, "milvus-lite", "pymilvus, milvus_lite", "milvus-lite==3.2.2 pymilvus==3.0.2")
}

// startMilvus runs `milvus-lite server` (Milvus Lite's gRPC server) on a
// free port with a fresh data directory until the test ends and returns
// its address once it accepts connections.
func startMilvus(t *testing.T, server string) string {
	return startVenvServer(t, "milvus-lite", server, []string{"server", "--data-dir", dirArg, "--host", "127.0.0.1", "--port", portArg}, func(addr string) bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// TestMilvusThroughGateway drives Milvus Lite's gRPC server through real
// Envoy with the official pymilvus client: a tenant creates a collection,
// inserts and searches; a read-only tenant searches and queries but its
// insert and create are PERMISSION_DENIED; no key, a wrong key and a
// user/password are UNAUTHENTICATED.
func TestMilvusThroughGateway(t *testing.T) {
	py, server := milvusPython(t)
	addr := startMilvus(t, server)
	g := startGateway(t, fmt.Sprintf(milvusConfig, addr, auth.HashKey(svcKeyAcme), auth.HashKey(svcKeyBeta)))

	cmd := exec.CommandContext(t.Context(), py, filepath.Join("py", "milvus_client.py"), g.gateway, svcKeyAcme, svcKeyBeta)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	require.NoError(t, err, "milvus_client.py failed:\n%s", stderr.String())
	type refused struct {
		OK    any
		Error struct{ Status, Details, Message string }
	}
	var out struct {
		Insert       int
		WriterSearch [][]struct {
			ID   int
			Text string
		} `json:"writer_search"`
		ReaderSearch [][]string `json:"reader_search"`
		ReaderQuery  []string   `json:"reader_query"`
		ReaderInsert refused    `json:"reader_insert"`
		ReaderCreate refused    `json:"reader_create"`
		NoKey        refused    `json:"no_key"`
		WrongKey     refused    `json:"wrong_key"`
		UserPassword refused    `json:"user_password"`
		Count        int
	}
	require.NoError(t, json.Unmarshal(stdout, &out), "milvus_client.py printed %s", stdout)
	t.Logf("pymilvus saw: %s", stdout)

	assert.Equal(t, 2, out.Insert)
	require.Len(t, out.WriterSearch, 1)
	require.Len(t, out.WriterSearch[0], 1)
	assert.Equal(t, 1, out.WriterSearch[0][0].ID)
	assert.Equal(t, "apples are red", out.WriterSearch[0][0].Text)
	assert.Equal(t, [][]string{{"the sky is blue"}}, out.ReaderSearch)
	assert.Equal(t, []string{"apples are red"}, out.ReaderQuery)
	assert.Nil(t, out.ReaderInsert.OK)
	assert.Equal(t, "PERMISSION_DENIED", out.ReaderInsert.Error.Status, "%+v", out.ReaderInsert)
	assert.Contains(t, out.ReaderInsert.Error.Details, "milvus.write", "%+v", out.ReaderInsert)
	assert.Nil(t, out.ReaderCreate.OK)
	assert.Equal(t, "PERMISSION_DENIED", out.ReaderCreate.Error.Status, "%+v", out.ReaderCreate)
	// pymilvus's connect (the Connect method) is refused; the client
	// raises its own "Fail connecting" from the gRPC error.
	assert.Nil(t, out.NoKey.OK)
	assert.Equal(t, "UNAUTHENTICATED", out.NoKey.Error.Status, "%+v", out.NoKey)
	assert.Equal(t, "UNAUTHENTICATED", out.WrongKey.Error.Status, "%+v", out.WrongKey)
	// user/password (base64 of "user:password") is not an API key.
	assert.Equal(t, "UNAUTHENTICATED", out.UserPassword.Error.Status, "%+v", out.UserPassword)
	assert.Equal(t, 2, out.Count, "the refused insert wrote nothing")

	// The access log names service, operation and tenant; metrics count them.
	line := waitLogLine(t, g, func(l map[string]any) bool {
		return l["service"] == "milvus" && l["operation"] == "read" && l["tenant"] == "beta"
	})
	assert.Equal(t, 200.0, line["status"])
	metrics := waitSeries(t, g, `streamgate_service_requests_total{operation="write",service="milvus",status="200",tenant="acme"}`)
	assert.Contains(t, metrics, `streamgate_service_requests_total{operation="write",service="milvus",status="403",tenant="beta"}`)
	assert.NotContains(t, g.logs.String(), svcKeyAcme)
	assert.NotContains(t, g.logs.String(), svcKeyBeta)
}

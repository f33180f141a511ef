package xds

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

// TestUploadRoutes: each upload path has its own route carrying the upload
// cap at the stream's start; routes that retry can buffer an upload for the
// retry; routes that do not keep the virtual host's limit; the 413 of an
// upload names the upload limit.
func TestUploadRoutes(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(`
gateway: {max_request_body_bytes: 1000, max_upload_bytes: 5000}
backends:
  - {name: a, protocol: openai, endpoints: ["10.0.0.1:1"]}
  - {name: b, protocol: openai, endpoints: ["10.0.0.2:1"]}
models:
  - {name: m, backend: a, fallbacks: [b]}
`))
	require.NoError(t, err)
	rc, err := routeConfig(cfg)
	require.NoError(t, err)
	vh := rc.GetVirtualHosts()[0]
	assert.EqualValues(t, 1000, vh.GetRequestBodyBufferLimit().GetValue())
	uploads := map[string]uint64{}
	for _, r := range vh.GetRoutes() {
		switch {
		case r.GetMatch().GetPath() != "":
			uploads[r.GetMatch().GetPath()] = r.GetRequestBodyBufferLimit().GetValue()
			assert.Equal(t, contract.UnroutedCluster, r.GetRoute().GetCluster())
		case r.GetRoute().GetRetryPolicy() != nil:
			assert.EqualValues(t, 5000, r.GetRequestBodyBufferLimit().GetValue(), "%s retries an upload whole", r.GetName())
		default:
			assert.Nil(t, r.GetRequestBodyBufferLimit(), "%s keeps the virtual host's limit", r.GetName())
		}
	}
	for _, p := range contract.UploadPaths {
		assert.EqualValues(t, 5000, uploads[p], p)
	}
	m := uploadTooLarge(cfg)
	assert.Contains(t, m.GetBodyFormatOverride().GetJsonFormat().GetFields()["error"].GetStructValue().GetFields()["message"].GetStringValue(), "upload limit of 5000 bytes")
}

// TestUploadCapNeverBelowTheBodyCap: an upload cap set below the JSON body
// cap gives uploads the body cap (config.Gateway.UploadCap), in Envoy as in
// ext_proc.
func TestUploadCapNeverBelowTheBodyCap(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte("gateway: {max_request_body_bytes: 9000, max_upload_bytes: 5000}\nbackends: [{name: a, protocol: openai, endpoints: [\"10.0.0.1:1\"]}]\n"))
	require.NoError(t, err)
	for _, r := range uploadRoutes(cfg) {
		assert.EqualValues(t, 9000, r.GetRequestBodyBufferLimit().GetValue())
	}
}

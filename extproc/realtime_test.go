package extproc

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/auth"
)

func TestRealtimeRequestHeaders(t *testing.T) {
	routes, a, _ := newGRPCFixture(t)
	ws := func(h map[string]string) map[string]string {
		h["upgrade"] = "websocket"
		return h
	}
	subKey := "realtime, " + realtimeKeyPrefix + grpcKey + ", openai-beta.realtime-v1"
	for name, tc := range map[string]struct {
		method, path string
		hdrs         map[string]string
		status       int // 0: routed
		protocols    string
	}{
		"subprotocol key":       {path: "/v1/realtime?model=chat", hdrs: ws(map[string]string{headerWSProtocol: subKey}), protocols: "realtime, openai-beta.realtime-v1"},
		"bearer key":            {path: "/v1/realtime?model=chat", hdrs: ws(map[string]string{"authorization": "Bearer " + grpcKey})},
		"key only protocol":     {path: "/v1/realtime?model=chat", hdrs: ws(map[string]string{headerWSProtocol: realtimeKeyPrefix + grpcKey})},
		"no credential":         {path: "/v1/realtime?model=chat", hdrs: ws(map[string]string{}), status: http.StatusUnauthorized},
		"wrong subprotocol key": {path: "/v1/realtime?model=chat", hdrs: ws(map[string]string{headerWSProtocol: realtimeKeyPrefix + "sk-nope-000000000000"}), status: http.StatusUnauthorized},
		"conflicting keys":      {path: "/v1/realtime?model=chat", hdrs: ws(map[string]string{"authorization": "Bearer " + grpcGuestKey, headerWSProtocol: realtimeKeyPrefix + grpcKey}), status: http.StatusUnauthorized},
		"endpoint denied":       {path: "/v1/realtime?model=chat", hdrs: ws(map[string]string{"x-api-key": grpcGuestKey}), status: http.StatusForbidden},
		"no model":              {path: "/v1/realtime", hdrs: ws(map[string]string{"x-api-key": grpcKey}), status: http.StatusBadRequest},
		"bad query":             {path: "/v1/realtime?model=%zz", hdrs: ws(map[string]string{"x-api-key": grpcKey}), status: http.StatusBadRequest},
		"unknown model":         {path: "/v1/realtime?model=nope", hdrs: ws(map[string]string{"x-api-key": grpcKey}), status: http.StatusNotFound},
		"grpc model":            {path: "/v1/realtime?model=resnet", hdrs: ws(map[string]string{"x-api-key": grpcKey}), status: http.StatusBadRequest},
		"no upgrade":            {path: "/v1/realtime?model=chat", hdrs: map[string]string{"x-api-key": grpcKey}, status: http.StatusMethodNotAllowed},
		"post":                  {method: "POST", path: "/v1/realtime?model=chat", hdrs: ws(map[string]string{"x-api-key": grpcKey}), status: http.StatusMethodNotAllowed},
		"upgrade elsewhere":     {path: "/v1/chat/completions", hdrs: ws(map[string]string{"x-api-key": grpcKey}), status: http.StatusMethodNotAllowed},
	} {
		t.Run(name, func(t *testing.T) {
			p := newProcessor(routes, 1<<20, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			p.ctx, p.auth = t.Context(), a
			method := tc.method
			if method == "" {
				method = "GET"
			}
			resp := p.handle(headersMsg(method, tc.path, tc.hdrs, false))
			all, _ := json.Marshal(resp.String())
			assert.NotContains(t, string(all), grpcKey, "the client's key goes nowhere")
			if tc.status != 0 {
				ir := resp.GetImmediateResponse()
				require.NotNil(t, ir, "want a refusal, got %v", resp)
				assert.EqualValues(t, tc.status, ir.GetStatus().GetCode())
				var body struct {
					Error struct{ Message, Type string }
				}
				require.NoError(t, json.Unmarshal(ir.GetBody(), &body), "an OpenAI error body")
				assert.NotEmpty(t, body.Error.Message)
				assert.True(t, p.done(resp))
				return
			}
			hr := resp.GetRequestHeaders()
			require.NotNil(t, hr, "want the session routed, got %v", resp)
			assert.False(t, p.done(resp), "the stream lives as long as the session")
			mode := resp.GetModeOverride()
			require.NotNil(t, mode)
			assert.Equal(t, extprocv3.ProcessingMode_NONE, mode.GetRequestBodyMode(), "frames must not reach ext_proc")
			assert.Equal(t, extprocv3.ProcessingMode_NONE, mode.GetResponseBodyMode())
			assert.Equal(t, extprocv3.ProcessingMode_SEND, mode.GetRequestTrailerMode(), "keeps Envoy from closing the stream before the session ends")
			m := hr.GetResponse().GetHeaderMutation()
			set := setHeaders(m)
			assert.Equal(t, "vllm", set[contract.BackendHeader])
			assert.Equal(t, "chat", set[contract.ModelHeader])
			assert.Equal(t, "/v1/realtime?model=chat", set[":path"])
			assert.Equal(t, "acme", set["x-tenant"])
			assert.Subset(t, m.GetRemoveHeaders(), []string{auth.HeaderAuthorization, auth.HeaderAPIKey})
			if tc.protocols != "" {
				assert.Equal(t, tc.protocols, set[headerWSProtocol])
			} else if _, ok := tc.hdrs[headerWSProtocol]; ok {
				assert.Contains(t, m.GetRemoveHeaders(), headerWSProtocol)
			}
			assert.True(t, hr.GetResponse().GetClearRouteCache())
		})
	}
}

func TestRealtimeKeySplitsTheCredentialFromTheSubprotocols(t *testing.T) {
	for name, tc := range map[string]struct {
		in   []string
		keys []string
		rest string
	}{
		"none":           {},
		"no key":         {in: []string{"realtime"}, rest: "realtime"},
		"openai clients": {in: []string{"realtime, openai-insecure-api-key.sk-1, openai-beta.realtime-v1"}, keys: []string{"sk-1"}, rest: "realtime, openai-beta.realtime-v1"},
		"repeated lines": {in: []string{"realtime", "openai-insecure-api-key.sk-1"}, keys: []string{"sk-1"}, rest: "realtime"},
		"two keys":       {in: []string{"openai-insecure-api-key.a,openai-insecure-api-key.b"}, keys: []string{"a", "b"}},
		"empty items":    {in: []string{" , ,realtime,"}, rest: "realtime"},
	} {
		t.Run(name, func(t *testing.T) {
			keys, rest := realtimeKey(tc.in)
			assert.Equal(t, tc.keys, keys)
			assert.Equal(t, tc.rest, rest)
		})
	}
}

// FuzzRealtimeKey: whatever the header holds, no key survives into what
// goes upstream, and every key is found.
func FuzzRealtimeKey(f *testing.F) {
	f.Add("realtime, openai-insecure-api-key.sk-1, openai-beta.realtime-v1", "")
	f.Add("openai-insecure-api-key.", "openai-insecure-api-key.x,,")
	f.Add(" ,\t", "realtime")
	f.Fuzz(func(t *testing.T, a, b string) {
		keys, rest := realtimeKey([]string{a, b})
		for item := range strings.SplitSeq(rest, ",") {
			if strings.HasPrefix(strings.TrimSpace(item), realtimeKeyPrefix) {
				t.Fatalf("a key survives upstream: %q", rest)
			}
		}
		if want := strings.Count(a, realtimeKeyPrefix) + strings.Count(b, realtimeKeyPrefix); len(keys) > want {
			t.Fatalf("%d keys from %d prefixes", len(keys), want)
		}
		_ = realtimeModel("/v1/realtime?" + a)
	})
}

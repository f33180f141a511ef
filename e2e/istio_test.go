package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/streamgate/streamgate/cmd/streamgate/cli"
	"github.com/streamgate/streamgate/envoy"
)

// istioConfig is the Streamgate config of the Istio test: the backend names
// are the x-streamgate-backend values examples/istio/virtualservice.yaml
// routes on.
const istioConfig = `extproc:
  listen: {{.ExtProc}}
metrics:
  listen: {{.Metrics}}
backends:
  - name: vllm
    protocol: openai
    endpoints: [{{.BackendA}}]
  - name: openai
    protocol: openai
    endpoints: [{{.BackendB}}]
  - name: vllm-backup
    protocol: openai
    endpoints: [{{.BackendB}}]
models:
  - name: model-a
    backend: vllm
    upstream_model: upstream-a
  - name: model-b
    backend: openai
  - name: model-fo
    backend: vllm
    upstream_model: upstream-fo
    fallbacks: [vllm-backup]
`

// TestIstioGateway runs real Envoy with what Istio would give its ingress
// gateway from examples/istio/: a listener whose HTTP connection manager
// has the EnvoyFilter's ext_proc filter before the router, the routes of
// the VirtualService, the VIRTUAL_HOST patch merged into the model host,
// and Istio-named outbound clusters (here pointing at the fake backends and
// at `streamgate extproc`). A completion streams through it, and another
// host on the same gateway never reaches Streamgate.
func TestIstioGateway(t *testing.T) {
	ports, err := freePorts(4)
	require.NoError(t, err)
	gateway, extProc, admin, metrics := ports[0], ports[1], ports[2], ports[3]
	dir := t.TempDir()
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- istio gateway logs ----\n%s", logs.String())
		}
	})

	var cfg bytes.Buffer
	require.NoError(t, template.Must(template.New("c").Parse(istioConfig)).Execute(&cfg, Ports{
		ExtProc: extProc, Metrics: metrics, BackendA: hostPort(gw.backendA.url), BackendB: hostPort(gw.backendB.url),
	}))
	cfgPath := filepath.Join(dir, "streamgate.yaml")
	require.NoError(t, os.WriteFile(cfgPath, cfg.Bytes(), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cli.Main(ctx, []string{"extproc", "-c", cfgPath}, logs, logs) }()
	t.Cleanup(func() { cancel(); <-done })

	boot := istioGatewayConfig(t, gateway, admin, map[string]string{
		"outbound|50051||streamgate-extproc.streamgate.svc.cluster.local": extProc,
		"outbound|8000||vllm.models.svc.cluster.local":                    hostPort(gw.backendA.url),
		"outbound|443||api.openai.com":                                    hostPort(gw.backendB.url),
		"outbound|8000||vllm-backup.models.svc.cluster.local":             hostPort(gw.backendB.url),
	})
	bootPath := filepath.Join(dir, "envoy.json")
	require.NoError(t, os.WriteFile(bootPath, boot, 0o600))
	out, err := exec.Command(os.Getenv("ENVOY_BIN"), "--mode", "validate", "-c", bootPath, "--disable-hot-restart").CombinedOutput()
	require.NoError(t, err, "envoy --mode validate:\n%s", out)

	proc, err := envoy.Start(ctx, os.Getenv("ENVOY_BIN"), bootPath, "warning", logs)
	require.NoError(t, err)
	t.Cleanup(func() { cancel(); <-proc.Done() })

	base := "http://" + gateway
	try := func(host, model string) (*http.Response, error) {
		req, err := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", bytes.NewReader(chatBody(model, true, "istio")))
		if err != nil {
			return nil, err
		}
		req.Host = host
		req.Header.Set("content-type", "application/json")
		return http.DefaultClient.Do(req)
	}
	send := func(host, model string) *http.Response {
		resp, err := try(host, model)
		require.NoError(t, err)
		return resp
	}
	require.Eventually(t, func() bool {
		resp, err := try("llm.example.com", "model-a")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Logf("not yet: %d %s", resp.StatusCode, b)
		}
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 100*time.Millisecond, "gateway never served a completion")

	for model, backend := range map[string]string{"model-a": "backend-a", "model-b": "backend-b"} {
		resp := send("llm.example.com", model)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, backend, resp.Header.Get("x-fakellm-backend"), "%s is routed on x-streamgate-backend", model)
		assert.Contains(t, resp.Header.Get("content-type"), "text/event-stream")
		sse := newSSEReader(resp.Body)
		var content strings.Builder
		last := ""
		for {
			data, err := sse.next()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			last = data
			if data == "[DONE]" {
				continue
			}
			var c chunk
			require.NoError(t, json.Unmarshal([]byte(data), &c))
			if model == "model-a" {
				assert.Equal(t, "upstream-a", c.Model, "ext_proc rewrote the model name")
			}
			if len(c.Choices) > 0 {
				content.WriteString(c.Choices[0].Delta.Content)
			}
		}
		resp.Body.Close()
		assert.Equal(t, "[DONE]", last)
		assert.NotEmpty(t, content.String())
	}

	// A model with fallbacks: envoyfilter-failover.yaml's aggregate cluster
	// and retry policy move a request its primary fails before the first
	// byte to the fallback.
	for _, fail := range []string{"", "503", "disconnect"} {
		req, err := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", bytes.NewReader(chatBody("model-fo", true, "istio")))
		require.NoError(t, err)
		req.Host = "llm.example.com"
		want := "backend-a"
		if fail != "" {
			req.Header.Set("x-fakellm-fail", fail)
			req.Header.Set("x-fakellm-fail-backend", "backend-a")
			want = "backend-b"
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "primary answering %q: %s", fail, body)
		assert.Equal(t, want, resp.Header.Get("x-fakellm-backend"), "primary answering %q", fail)
	}

	// Streamgate's errors come through: an unknown model is a 404 OpenAI error.
	resp := send("llm.example.com", "no-such-model")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Contains(t, string(body), `"model_not_found"`)

	// The gateway's other hosts never reach Streamgate: ext_proc is off there.
	resp = send("other.example.com", "model-a")
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "other app", string(body))
}

// istioGatewayConfig builds the Envoy bootstrap Istio would produce for the
// ingress gateway from examples/istio/, with the clusters' addresses given.
func istioGatewayConfig(t *testing.T, listen, admin string, clusters map[string]string) []byte {
	t.Helper()
	read := func(name string) []map[string]any {
		raw, err := os.ReadFile("../examples/istio/" + name)
		require.NoError(t, err)
		var out []map[string]any
		for _, doc := range strings.Split(string(raw), "\n---\n") {
			var m map[string]any
			require.NoError(t, yaml.Unmarshal([]byte(doc), &m))
			if m != nil {
				out = append(out, m)
			}
		}
		return out
	}
	var filter, vhostPatch map[string]any
	for _, p := range read("envoyfilter.yaml")[0]["spec"].(map[string]any)["configPatches"].([]any) {
		p := p.(map[string]any)
		value := p["patch"].(map[string]any)["value"].(map[string]any)
		switch p["applyTo"] {
		case "HTTP_FILTER":
			filter = value
		case "VIRTUAL_HOST":
			vhostPatch = value
		}
	}
	require.NotNil(t, filter)
	require.NotNil(t, vhostPatch)
	// envoyfilter-failover.yaml: aggregate clusters added, routes merged by name.
	var added []any
	routePatches := map[string]map[string]any{}
	for _, p := range read("envoyfilter-failover.yaml")[0]["spec"].(map[string]any)["configPatches"].([]any) {
		p := p.(map[string]any)
		value := p["patch"].(map[string]any)["value"].(map[string]any)
		switch p["applyTo"] {
		case "CLUSTER":
			added = append(added, value)
		case "HTTP_ROUTE":
			rc := p["match"].(map[string]any)["routeConfiguration"].(map[string]any)
			routePatches[rc["vhost"].(map[string]any)["route"].(map[string]any)["name"].(string)] = value
		}
	}

	// The VirtualService's routes, as Istio translates them.
	vs := read("virtualservice.yaml")[0]["spec"].(map[string]any)
	var routes []any
	for _, r := range vs["http"].([]any) {
		r := r.(map[string]any)
		if dr, ok := r["directResponse"].(map[string]any); ok {
			routes = append(routes, map[string]any{"name": r["name"], "match": map[string]any{"prefix": "/"},
				"direct_response": map[string]any{"status": dr["status"], "body": map[string]any{"inline_string": dr["body"].(map[string]any)["string"]}}})
			continue
		}
		m := r["match"].([]any)[0].(map[string]any)
		var headers []any
		for name, v := range m["headers"].(map[string]any) {
			headers = append(headers, map[string]any{"name": name, "string_match": map[string]any{"exact": v.(map[string]any)["exact"]}})
		}
		dest := r["route"].([]any)[0].(map[string]any)["destination"].(map[string]any)
		port := dest["port"].(map[string]any)["number"].(float64)
		route := map[string]any{
			"name":  r["name"],
			"match": map[string]any{"prefix": m["uri"].(map[string]any)["prefix"], "headers": headers},
			"route": map[string]any{"cluster": fmt.Sprintf("outbound|%d||%s", int(port), dest["host"]), "timeout": r["timeout"]},
		}
		if patch, ok := routePatches[r["name"].(string)]; ok {
			mergeInto(route, patch)
		}
		routes = append(routes, route)
	}
	host := vs["hosts"].([]any)[0].(string)
	modelHost := map[string]any{"name": host + ":80", "domains": []any{host, host + ":*"}, "routes": routes}
	for k, v := range vhostPatch { // MERGE
		modelHost[k] = v
	}
	otherHost := map[string]any{"name": "other.example.com:80", "domains": []any{"other.example.com", "other.example.com:*"},
		"routes": []any{map[string]any{"match": map[string]any{"prefix": "/"}, "direct_response": map[string]any{"status": 200, "body": map[string]any{"inline_string": "other app"}}}}}

	var cs []any
	for name, addr := range clusters {
		h, p, _ := strings.Cut(addr, ":")
		port, err := strconv.Atoi(p)
		require.NoError(t, err)
		c := map[string]any{
			"name": name, "type": "STATIC", "connect_timeout": "1s",
			"load_assignment": map[string]any{"cluster_name": name, "endpoints": []any{map[string]any{"lb_endpoints": []any{
				map[string]any{"endpoint": map[string]any{"address": map[string]any{"socket_address": map[string]any{"address": h, "port_value": port}}}}}}}},
		}
		if strings.HasPrefix(name, "outbound|50051|") { // Istio speaks HTTP/2 to grpc-* ports
			c["typed_extension_protocol_options"] = map[string]any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": map[string]any{
				"@type":                "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
				"explicit_http_config": map[string]any{"http2_protocol_options": map[string]any{}}}}
		}
		cs = append(cs, c)
	}
	cs = append(cs, added...)
	ah, ap, _ := strings.Cut(admin, ":")
	lh, lp, _ := strings.Cut(listen, ":")
	adminPort, _ := strconv.Atoi(ap)
	listenPort, _ := strconv.Atoi(lp)
	boot := map[string]any{
		"admin": map[string]any{"address": map[string]any{"socket_address": map[string]any{"address": ah, "port_value": adminPort}}},
		"static_resources": map[string]any{
			"listeners": []any{map[string]any{
				"name":    "0.0.0.0_80",
				"address": map[string]any{"socket_address": map[string]any{"address": lh, "port_value": listenPort}},
				"filter_chains": []any{map[string]any{"filters": []any{map[string]any{
					"name": "envoy.filters.network.http_connection_manager",
					"typed_config": map[string]any{
						"@type":        "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
						"stat_prefix":  "outbound_0.0.0.0_80",
						"route_config": map[string]any{"name": "http.80", "virtual_hosts": []any{modelHost, otherHost}},
						"http_filters": []any{filter, map[string]any{"name": "envoy.filters.http.router", "typed_config": map[string]any{
							"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}},
					},
				}}}},
			}},
			"clusters": cs,
		},
	}
	b, err := json.MarshalIndent(boot, "", "  ")
	require.NoError(t, err)
	return b
}

// mergeInto applies an EnvoyFilter MERGE patch as Istio does for the
// fields used here: nested messages merge, scalars replace. (Istio appends
// repeated fields; the emulated routes have none for a patch to extend.)
func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		if sv, ok := v.(map[string]any); ok {
			if dv, ok := dst[k].(map[string]any); ok {
				mergeInto(dv, sv)
				continue
			}
		}
		dst[k] = v
	}
}

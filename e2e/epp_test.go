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
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/cmd/streamgate/cli"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/envoy"
	"github.com/streamgate/streamgate/examples/fakellm"
)

// eppConfig is the config of `streamgate epp`: one backend with picking over
// the three model servers of the InferencePool.
const eppConfig = `metrics:
  listen: {{.Metrics}}
backends:
  - name: pool
    protocol: openai
    endpoints: [{{index .Servers 0}}, {{index .Servers 1}}, {{index .Servers 2}}]
    picking: {metrics: none}
models:
  - {name: m, backend: pool}
`

// eppEnvoy is Envoy configured the way the endpoint-picker protocol
// describes, as an InferencePool's gateway would be: a cluster of the
// pool's endpoints whose load balancing policy is override_host (the picked
// list from the x-gateway-destination-endpoint header or envoy.lb
// metadata, the served endpoint written back to envoy.lb, LEAST_REQUEST as
// fallback), an ext_proc filter calling the EPP (request headers, buffered
// request body, response headers; envoy.lb and envoy.lb.subset_hint
// forwarded, envoy.lb received) and a retry policy that walks the list.
// Each listener is one gateway; those with a Subset put the subset hint
// in the filter metadata with the set_metadata filter before ext_proc.
const eppEnvoy = `admin:
  address: {socket_address: {address: 127.0.0.1, port_value: {{.AdminPort}}}}
static_resources:
  listeners:
{{- range .Listeners}}
  - name: {{.Name}}
    address: {socket_address: {address: 127.0.0.1, port_value: {{.Port}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {{.Name}}
          route_config:
            virtual_hosts:
            - name: pool
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                route:
                  cluster: pool
                  timeout: 0s
                  retry_policy:
                    retry_on: connect-failure,refused-stream,reset,5xx,retriable-status-codes
                    retriable_status_codes: [429]
                    num_retries: 2
          http_filters:
{{- if .HasSubset}}
          - name: envoy.filters.http.set_metadata
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.set_metadata.v3.Config
              metadata:
              - metadata_namespace: envoy.lb.subset_hint
                value:
                  x-gateway-destination-endpoint-subset: {{.SubsetJSON}}
{{- end}}
          - name: envoy.filters.http.ext_proc
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor
              grpc_service:
                envoy_grpc: {cluster_name: epp}
              failure_mode_allow: false
{{- if .Duplex}}
              processing_mode:
                request_header_mode: SEND
                request_body_mode: FULL_DUPLEX_STREAMED
                request_trailer_mode: SEND
                response_header_mode: SEND
                response_body_mode: FULL_DUPLEX_STREAMED
                response_trailer_mode: SEND
{{- else}}
              message_timeout: 2s
              processing_mode:
                request_header_mode: SEND
                request_body_mode: BUFFERED
                response_header_mode: SEND
                response_body_mode: NONE
                request_trailer_mode: SKIP
                response_trailer_mode: SKIP
{{- end}}
              metadata_options:
                forwarding_namespaces:
                  untyped: [envoy.lb, envoy.lb.subset_hint]
                receiving_namespaces:
                  untyped: [envoy.lb]
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
{{- end}}
  clusters:
  - name: pool
    type: STATIC
    connect_timeout: 1s
    load_balancing_policy:
      policies:
      - typed_extension_config:
          name: envoy.load_balancing_policies.override_host
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost
            override_host_sources:
            - header: x-gateway-destination-endpoint
            - metadata: {key: envoy.lb, path: [{key: x-gateway-destination-endpoint}]}
            selected_host_key: {key: envoy.lb, path: [{key: x-gateway-destination-endpoint-served}]}
            fallback_policy:
              policies:
              - typed_extension_config:
                  name: envoy.load_balancing_policies.least_request
                  typed_config:
                    "@type": type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest
    load_assignment:
      cluster_name: pool
      endpoints:
      - lb_endpoints:
{{- range .Servers}}
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {{port .}}}}}
{{- end}}
  - name: epp
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: epp
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {{port .EPP}}}}}
`

// eppListener is one gateway listener of eppEnvoy.
type eppListener struct {
	Name, Port string
	// Subset, when not nil, is the subset hint the listener passes (may
	// be an empty list).
	Subset []string
	// Duplex: ext_proc gets both bodies FULL_DUPLEX_STREAMED, as Istio,
	// kgateway and Envoy Gateway configure it for an InferencePool;
	// otherwise the request body BUFFERED and no response body, as the
	// protocol's minimal setup.
	Duplex bool
}

// HasSubset says the listener passes a subset hint.
func (l eppListener) HasSubset() bool { return l.Subset != nil }

// SubsetJSON is the hint as a YAML flow list.
func (l eppListener) SubsetJSON() string {
	b, _ := json.Marshal(l.Subset)
	return string(b)
}

// eppPool is a running InferencePool: three fake model servers named by
// their addresses, `streamgate epp`, and Envoy with one listener per test
// case.
type eppPool struct {
	servers []*killable
	addrs   []string
	gateway map[string]string // listener name -> http://127.0.0.1:port
	metrics string
}

func startEPPPool(t *testing.T, listeners ...eppListener) *eppPool {
	t.Helper()
	return startEPPPoolWith(t, func([]string) []eppListener { return listeners })
}

// startEPPPoolWith starts a pool whose listeners are made from the model
// servers' addresses (for subset hints naming them).
func startEPPPoolWith(t *testing.T, listenersOf func(servers []string) []eppListener) *eppPool {
	t.Helper()
	p := &eppPool{gateway: map[string]string{}}
	for range 3 {
		k := startKillable(t, "")
		// The server's name is its address: x-fakellm-backend says which served.
		k.Server = fakellm.New(fakellm.Options{Name: k.addr})
		k.srv.Handler = k.Server
		p.servers = append(p.servers, k)
		p.addrs = append(p.addrs, k.addr)
	}
	listeners := listenersOf(p.addrs)
	ports, err := freePorts(3 + len(listeners))
	require.NoError(t, err)
	eppAddr, metrics, admin := ports[0], ports[1], ports[2]
	p.metrics = "http://" + metrics
	for i := range listeners {
		listeners[i].Port = portOf(ports[3+i])
		p.gateway[listeners[i].Name] = "http://" + ports[3+i]
	}
	dir := t.TempDir()
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- epp + envoy logs ----\n%s", logs.String())
		}
	})
	funcs := template.FuncMap{"port": portOf}
	data := map[string]any{"Metrics": metrics, "Servers": p.addrs, "EPP": eppAddr, "AdminPort": portOf(admin), "Listeners": listeners}
	var cfg, boot bytes.Buffer
	require.NoError(t, template.Must(template.New("c").Funcs(funcs).Parse(eppConfig)).Execute(&cfg, data))
	require.NoError(t, template.Must(template.New("e").Funcs(funcs).Parse(eppEnvoy)).Execute(&boot, data))
	cfgPath, bootPath := filepath.Join(dir, "streamgate.yaml"), filepath.Join(dir, "envoy.yaml")
	require.NoError(t, os.WriteFile(cfgPath, cfg.Bytes(), 0o600))
	require.NoError(t, os.WriteFile(bootPath, boot.Bytes(), 0o600))
	out, err := exec.Command(os.Getenv("ENVOY_BIN"), "--mode", "validate", "-c", bootPath, "--disable-hot-restart").CombinedOutput()
	require.NoError(t, err, "envoy --mode validate:\n%s", out)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cli.Main(ctx, []string{"epp", "-c", cfgPath, "-listen", eppAddr}, logs, logs) }()
	t.Cleanup(func() { cancel(); <-done })
	proc, err := envoy.Start(ctx, os.Getenv("ENVOY_BIN"), bootPath, "warning", logs)
	require.NoError(t, err)
	t.Cleanup(func() { cancel(); <-proc.Done() })

	require.Eventually(t, func() bool {
		resp, err := p.try(listeners[0].Name, "ready?", nil)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 100*time.Millisecond, "the pool never served through Envoy and the EPP")
	return p
}

func portOf(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

// try sends a chat completion with prompt through the named listener.
func (p *eppPool) try(listener, prompt string, headers map[string]string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, p.gateway[listener]+"/v1/chat/completions", bytes.NewReader(chatBody("m", true, prompt)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("content-type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return http.DefaultClient.Do(req)
}

// served sends a request through listener, reads it whole and returns the
// status and the server that answered.
func (p *eppPool) served(t *testing.T, listener, prompt string) (int, string, []byte) {
	t.Helper()
	resp, err := p.try(listener, prompt, nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header.Get(fakellm.HeaderBackend), body
}

// counter sums the EPP's counter name over the series whose labels include
// every pair in labels.
func (p *eppPool) counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	return sumWhere(scrapeFamilies(t, &env{metrics: p.metrics}), name, "", labels)
}

// gauge reads one of the EPP's gauges.
func (p *eppPool) gauge(t *testing.T, name string) float64 {
	t.Helper()
	return sumWhere(scrapeFamilies(t, &env{metrics: p.metrics}), name, "", nil)
}

// TestEPPSteersRequestsToThePickedEndpoint: Envoy sends each request to the
// endpoint `streamgate epp` picked. Two streams held open on two endpoints
// count there, so every new request goes to the third. Both body modes: a
// buffered request body, and full-duplex bodies both ways.
func TestEPPSteersRequestsToThePickedEndpoint(t *testing.T) {
	for name, duplex := range map[string]bool{"buffered": false, "full duplex": true} {
		t.Run(name, func(t *testing.T) {
			p := startEPPPool(t, eppListener{Name: "gw", Duplex: duplex})
			steersAwayFromHeldStreams(t, p)
		})
	}
}

func steersAwayFromHeldStreams(t *testing.T, p *eppPool) {
	t.Helper()
	// Two long streams (40 tokens, 100 ms apart), each picked onto its own
	// endpoint: the first is counted before the second is picked.
	held := map[string]bool{}
	var bodies []io.ReadCloser
	for i := range 2 {
		resp, err := p.try("gw", fmt.Sprintf("hold %d", i), map[string]string{fakellm.HeaderITL: "100", fakellm.HeaderTokens: "40"})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		held[resp.Header.Get(fakellm.HeaderBackend)] = true
		bodies = append(bodies, resp.Body)
	}
	defer func() {
		for _, b := range bodies {
			b.Close()
		}
	}()
	require.Len(t, held, 2, "the second stream avoided the endpoint holding the first")
	var free string
	for _, a := range p.addrs {
		if !held[a] {
			free = a
		}
	}
	// The readiness probe may have been picked onto the free endpoint.
	basePicks := p.counter(t, "streamgate_epp_picks_total", map[string]string{"endpoint": free})
	baseServed := p.counter(t, "streamgate_epp_served_total", map[string]string{"endpoint": free, "fallback": "false"})
	// A long prompt arrives in many chunks; the server gets it whole.
	long := strings.Repeat("a long shared system prompt ", 8<<10)
	for i := range 6 {
		// Envoy ends the previous request's ext_proc stream just after its
		// response: wait for it, so that only the held streams count.
		require.Eventually(t, func() bool { return p.gauge(t, "streamgate_epp_streams_open") == 2 }, 5*time.Second, 10*time.Millisecond)
		code, server, body := p.served(t, "gw", fmt.Sprintf("new request %d %s", i, long))
		require.Equal(t, http.StatusOK, code, "%s", body)
		assert.Equal(t, free, server, "request %d goes to the only endpoint without a held stream", i)
		assert.Contains(t, string(body), "data: [DONE]", "the stream arrived whole")
	}
	assert.InDelta(t, 6, p.counter(t, "streamgate_epp_picks_total", map[string]string{"endpoint": free})-basePicks, 0)
	assert.InDelta(t, 6, p.counter(t, "streamgate_epp_served_total", map[string]string{"endpoint": free, "fallback": "false"})-baseServed, 0,
		"Envoy reported the served endpoint (envoy.lb x-gateway-destination-endpoint-served)")
}

// TestEPPSubsetHint: the subset hint Envoy passes in the filter metadata
// envoy.lb.subset_hint restricts the pick; an empty or foreign subset is
// refused with 503.
func TestEPPSubsetHint(t *testing.T) {
	p := startEPPPoolWithSubsets(t)
	for _, gw := range []string{"only-second", "only-second-duplex"} {
		t.Run(gw, func(t *testing.T) {
			for i := range 4 {
				code, server, body := p.served(t, gw, fmt.Sprintf("subset %d", i))
				require.Equal(t, http.StatusOK, code, "%s", body)
				assert.Equal(t, p.addrs[1], server)
			}
		})
	}
	t.Run("client header replaced", func(t *testing.T) {
		resp, err := p.try("only-second", "x", map[string]string{contract.DestinationEndpointKey: p.addrs[2]})
		require.NoError(t, err)
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		assert.Equal(t, p.addrs[1], resp.Header.Get(fakellm.HeaderBackend), "the pick, not the client, names the endpoint")
	})
	for _, gw := range []string{"empty", "foreign", "empty-duplex"} {
		t.Run(gw, func(t *testing.T) {
			code, _, body := p.served(t, gw, "x")
			assert.Equal(t, http.StatusServiceUnavailable, code)
			var e struct {
				Error struct{ Code string } `json:"error"`
			}
			require.NoError(t, json.Unmarshal(body, &e), "%s", body)
			assert.Equal(t, "no_endpoint", e.Error.Code)
		})
	}
	assert.InDelta(t, 3, p.counter(t, "streamgate_epp_refusals_total", map[string]string{"code": "no_endpoint"}), 0)
}

// startEPPPoolWithSubsets starts a pool whose listeners pass a subset hint
// naming the second server, an empty one and one naming no server of the
// pool, with buffered and full-duplex bodies.
func startEPPPoolWithSubsets(t *testing.T) *eppPool {
	t.Helper()
	return startEPPPoolWith(t, func(addrs []string) []eppListener {
		return []eppListener{
			{Name: "only-second", Subset: []string{addrs[1]}},
			{Name: "empty", Subset: []string{}},
			{Name: "foreign", Subset: []string{"127.0.0.1:1"}},
			{Name: "only-second-duplex", Subset: []string{addrs[1]}, Duplex: true},
			{Name: "empty-duplex", Subset: []string{}, Duplex: true},
		}
	})
}

// TestEPPFallbackWhenPickedEndpointIsDown: with a picked endpoint down,
// Envoy retries down the picked list; the request is served by a fallback,
// and Envoy reports that endpoint back to the EPP.
func TestEPPFallbackWhenPickedEndpointIsDown(t *testing.T) {
	for name, duplex := range map[string]bool{"buffered": false, "full duplex": true} {
		t.Run(name, func(t *testing.T) {
			fallsBackFromDeadEndpoint(t, startEPPPool(t, eppListener{Name: "gw", Duplex: duplex}))
		})
	}
}

func fallsBackFromDeadEndpoint(t *testing.T, p *eppPool) {
	t.Helper()
	dead := p.addrs[0]
	// The readiness probe of startEPPPool was picked and served already.
	basePicked := p.counter(t, "streamgate_epp_picks_total", map[string]string{"endpoint": dead})
	baseServed := p.counter(t, "streamgate_epp_served_total", map[string]string{"endpoint": dead})
	require.NoError(t, p.servers[0].srv.Close())
	for i := range 8 {
		code, server, body := p.served(t, "gw", fmt.Sprintf("fallback %d", i))
		require.Equal(t, http.StatusOK, code, "%s", body)
		assert.NotEqual(t, dead, server)
	}
	pickedDead := p.counter(t, "streamgate_epp_picks_total", map[string]string{"endpoint": dead}) - basePicked
	require.Positive(t, pickedDead, "the picker, which sees no metrics, chose the dead endpoint at least once")
	assert.InDelta(t, pickedDead, p.counter(t, "streamgate_epp_served_total", map[string]string{"fallback": "true"}), 0,
		"every request picked for the dead endpoint was reported served by a fallback")
	assert.InDelta(t, baseServed, p.counter(t, "streamgate_epp_served_total", map[string]string{"endpoint": dead}), 0)
	assert.InDelta(t, 9, p.counter(t, "streamgate_epp_served_total", nil), 0, "every response's server was reported")
}

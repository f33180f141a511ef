package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/picking"
)

func TestEPPBackendChoice(t *testing.T) {
	const two = `backends:
  - {name: a, protocol: openai, endpoints: ["127.0.0.1:1"], picking: {}}
  - {name: b, protocol: openai, endpoints: ["127.0.0.1:2"]}
  - {name: c, protocol: openai, endpoints: ["127.0.0.1:3"], picking: {}}
models:
  - {name: m, backend: a}
`
	const one = `backends:
  - {name: a, protocol: openai, endpoints: ["127.0.0.1:1"]}
  - {name: c, protocol: openai, endpoints: ["127.0.0.1:3"], picking: {}}
models:
  - {name: m, backend: a}
`
	const none = "backends:\n  - {name: a, protocol: openai, endpoints: [\"127.0.0.1:1\"]}\nmodels:\n  - {name: m, backend: a}\n"
	for name, tc := range map[string]struct {
		cfg, flag, want, err string
	}{
		"named":               {two, "c", "c", ""},
		"named, no picking":   {two, "b", "", `backend "b" has no picking block`},
		"unknown":             {two, "z", "", `no backend named "z"`},
		"several, none named": {two, "", "", "several backends have picking ([a c]); choose one with -backend"},
		"the only one":        {one, "", "c", ""},
		"none picks":          {none, "", "", "no backend has a picking block"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := config.Parse("t.yaml", []byte(tc.cfg))
			require.NoError(t, err)
			got, err := eppBackend(cfg, tc.flag)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestEPPReloadUpdatesEndpointsAndRefusesLosingPicking: an edit of the
// backend's endpoints reaches the pool; an edit that takes its picking
// away is refused and changes nothing.
func TestEPPReloadUpdatesEndpointsAndRefusesLosingPicking(t *testing.T) {
	parse := func(src string) *config.Config {
		cfg, err := config.Parse("t.yaml", []byte(src))
		require.NoError(t, err)
		return cfg
	}
	base := "backends:\n  - {name: a, protocol: openai, endpoints: [%s]%s}\n  - {name: o, protocol: openai, endpoints: [\"127.0.0.1:9\"], picking: {}}\nmodels:\n  - {name: m, backend: a}\n"
	pool := picking.NewPool(prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer pool.Close()
	pool.Update(onlyBackend(parse(fmt.Sprintf(base, `"127.0.0.1:1"`, ", picking: {}")), "a"))
	assert.Nil(t, pool.Backend("o"), "only the picked-for backend is scraped")
	r := eppReloader(pool, "a")

	apply, err := r(parse(fmt.Sprintf(base, `"127.0.0.1:1", "127.0.0.1:2"`, ", picking: {}")))
	require.NoError(t, err)
	apply()
	var addrs []string
	for _, ep := range pool.Backend("a").Endpoints() {
		addrs = append(addrs, ep.Addr)
	}
	assert.Equal(t, []string{"127.0.0.1:1", "127.0.0.1:2"}, addrs)

	_, err = r(parse(fmt.Sprintf(base, `"127.0.0.1:1"`, "")))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `streamgate epp picks for backend "a" until restarted`)
}

// TestEPPCommandServes runs `streamgate epp` and picks over its ext_proc
// listener; its metrics and readiness answer, and it stops when cancelled.
func TestEPPCommandServes(t *testing.T) {
	ports := make([]string, 2)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ports[i] = l.Addr().String()
		l.Close()
	}
	path := filepath.Join(t.TempDir(), "s.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`metrics: {listen: %s}
backends:
  - {name: pool, protocol: openai, endpoints: ["127.0.0.1:8001", "127.0.0.1:8002"], picking: {metrics: none}}
models:
  - {name: m, backend: pool}
`, ports[1])), 0o600))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() { done <- Main(ctx, []string{"epp", "-c", path, "-listen", ports[0]}, &out, io.Discard) }()

	conn, err := grpc.NewClient(ports[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	var resp *extprocsvcv3.ProcessingResponse
	require.Eventually(t, func() bool {
		stream, err := extprocsvcv3.NewExternalProcessorClient(conn).Process(ctx)
		if err != nil {
			return false
		}
		defer func() { _ = stream.CloseSend() }()
		if stream.Send(&extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocsvcv3.HttpHeaders{
			Headers: &corev3.HeaderMap{}, EndOfStream: true,
		}}}) != nil {
			return false
		}
		resp, err = stream.Recv()
		return err == nil
	}, 10*time.Second, 50*time.Millisecond)
	var dest string
	for _, h := range resp.GetRequestHeaders().GetResponse().GetHeaderMutation().GetSetHeaders() {
		if h.GetHeader().GetKey() == contract.DestinationEndpointKey {
			dest = string(h.GetHeader().GetRawValue())
		}
	}
	assert.ElementsMatch(t, []string{"127.0.0.1:8001", "127.0.0.1:8002"}, strings.Split(dest, ","))

	get := func(p string) (int, string) {
		r, err := http.Get("http://" + ports[1] + p)
		require.NoError(t, err)
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	code, _ := get("/readyz")
	assert.Equal(t, http.StatusOK, code)
	_, metrics := get("/metrics")
	assert.Contains(t, metrics, `streamgate_epp_picks_total{backend="pool",endpoint="`+strings.Split(dest, ",")[0]+`"`)

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("streamgate epp did not stop")
	}
	// Read only once Main returned: it writes out while serving.
	assert.True(t, strings.HasPrefix(out.String(), "streamgate dev picking for backend pool"), out.String())
}

// TestEPPCommandDrainsOnStop: on SIGTERM `streamgate epp` fails /readyz but
// keeps its open requests until they end, then stops.
func TestEPPCommandDrainsOnStop(t *testing.T) {
	ports := make([]string, 2)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ports[i] = l.Addr().String()
		l.Close()
	}
	path := filepath.Join(t.TempDir(), "s.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`metrics: {listen: %s}
gateway: {drain_timeout: 20s}
backends:
  - {name: pool, protocol: openai, endpoints: ["127.0.0.1:8001"], picking: {metrics: none}}
models:
  - {name: m, backend: pool}
`, ports[1])), 0o600))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Main(ctx, []string{"epp", "-c", path, "-listen", ports[0]}, io.Discard, io.Discard) }()

	conn, err := grpc.NewClient(ports[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	var stream extprocsvcv3.ExternalProcessor_ProcessClient
	require.Eventually(t, func() bool {
		stream, err = extprocsvcv3.NewExternalProcessorClient(conn).Process(t.Context())
		if err != nil {
			return false
		}
		if stream.Send(&extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocsvcv3.HttpHeaders{
			Headers: &corev3.HeaderMap{}, EndOfStream: true,
		}}}) != nil {
			return false
		}
		_, err = stream.Recv()
		return err == nil
	}, 10*time.Second, 50*time.Millisecond)

	cancel() // SIGTERM with one request open
	require.Eventually(t, func() bool {
		r, err := http.Get("http://" + ports[1] + "/readyz")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == http.StatusServiceUnavailable
	}, 5*time.Second, 20*time.Millisecond, "/readyz fails while draining")
	select {
	case err := <-done:
		t.Fatalf("stopped with a request open: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	require.NoError(t, stream.CloseSend())
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("streamgate epp did not stop once the request ended")
	}
}

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pickingConfig serves model pk from backend gpu, whose endpoints Streamgate
// picks (metrics none: in-flight counts decide), and model chain from gpu
// with backend-b as its fallback. A picked request keeps its ext_proc
// stream open to the response's end, so a stream counts as in flight on
// its endpoint until it ends, with nothing else asking for the response.
// Access log on stdout.
const pickingConfig = listeners + `backends:
  - name: gpu
    protocol: openai
    endpoints: [ENDPOINTS]
    picking: {metrics: none, fallbacks: 2}
HEALTH
  - name: backend-b
    protocol: openai
    endpoints: [{{.BackendB}}]
models:
  - name: pk
    backend: gpu
  - name: chain
    backend: gpu
    fallbacks: [backend-b]
`

// pickingGateway starts a gateway whose gpu backend has endpoints eps;
// health adds a health check to it.
func pickingGateway(t *testing.T, eps []string, health bool) *env {
	t.Helper()
	return startGateway(t, pickingYAML(eps, health))
}

func pickingYAML(eps []string, health bool) string {
	h := ""
	if health {
		h = "    health_check: {interval: 200ms, timeout: 100ms, unhealthy_threshold: 1}"
	}
	return strings.NewReplacer("ENDPOINTS", strings.Join(eps, ", "), "HEALTH\n", h+"\n").Replace(pickingConfig)
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	return addr
}

// served is one finished request: the fakellm that answered, and the
// access log's picked endpoint, served endpoint and attempts.
type served struct {
	backend, picked, reason, upstream string
	attempts                          float64
}

// pickRequest sends one chat request for model with header pairs kv.
func pickRequest(t *testing.T, g *env, model string, kv ...string) served {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, g.gateway+"/v1/chat/completions", strings.NewReader(string(chatBody(model, false, "hello"))))
	require.NoError(t, err)
	req.Header.Set("content-type", "application/json")
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	line := accessLine(t, g, resp.Header.Get("x-request-id"))
	s := served{backend: resp.Header.Get("x-fakellm-backend"), upstream: fmt.Sprint(line["upstream_host"])}
	s.picked, _ = line["picked_endpoint"].(string)
	s.reason, _ = line["pick_reason"].(string)
	s.attempts, _ = line["attempts"].(float64)
	return s
}

// holdStream opens a streaming request that lasts about d and returns the
// fakellm that serves it; the stream is read to its end in the background.
func holdStream(t *testing.T, g *env, model string, d time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.gateway+"/v1/chat/completions", strings.NewReader(string(chatBody(model, true, "long"))))
	require.NoError(t, err)
	req.Header.Set("x-fakellm-tokens", "20")
	req.Header.Set("x-fakellm-itl-ms", fmt.Sprint(d.Milliseconds()/20))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	go func() {
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
	}()
	return resp.Header.Get("x-fakellm-backend")
}

// TestPickedEndpointServesTheRequest: Envoy sends each request to the
// endpoint Streamgate picked; streams held open steer new requests to the
// other endpoints.
func TestPickedEndpointServesTheRequest(t *testing.T) {
	byAddr := map[string]string{}
	var addrs []string
	for _, name := range []string{"e1", "e2", "e3"} {
		k := startKillable(t, name)
		byAddr[k.addr] = name
		addrs = append(addrs, k.addr)
	}
	g := pickingGateway(t, addrs, false)

	// The client names an endpoint itself: Envoy reads only the metadata,
	// and equal endpoints take turns, so the client's choice is not followed.
	steered := 0
	for range 3 {
		s := pickRequest(t, g, "pk", "x-gateway-destination-endpoint", addrs[2])
		require.NotEmpty(t, s.picked, "the access log names the picked endpoint")
		assert.Equal(t, "in_flight", s.reason, "metrics: none picks by in-flight counts")
		assert.Equal(t, s.picked, s.upstream, "Envoy used the picked endpoint")
		assert.Equal(t, byAddr[s.picked], s.backend, "the picked endpoint's server answered")
		if s.upstream == addrs[2] {
			steered++
		}
	}
	assert.Less(t, steered, 3, "the client's header steered every request")

	// Two long streams held open: each lands on an endpoint with nothing
	// in flight, and a third request goes to the one still idle.
	busy := map[string]bool{}
	for range 2 {
		b := holdStream(t, g, "pk", 3*time.Second)
		assert.False(t, busy[b], "a new stream avoids the endpoint already streaming: %s", b)
		busy[b] = true
	}
	for _, a := range addrs {
		series := fmt.Sprintf(`streamgate_picking_endpoint_in_flight{backend="gpu",endpoint=%q}`, a)
		want := 0.0
		if busy[byAddr[a]] {
			want = 1 // the held stream, counted until it ends
		}
		assert.Equal(t, want, metric(t, g, series), a)
	}
	s := pickRequest(t, g, "pk")
	assert.False(t, busy[s.backend], "request went to a busy endpoint %s (busy: %v)", s.backend, busy)
	assert.Equal(t, s.picked, s.upstream)
	// Envoy closes each ext_proc stream when its response ends, which ends
	// the pick: nothing stays counted in flight.
	for _, a := range addrs {
		waitMetric(t, g, fmt.Sprintf(`streamgate_picking_endpoint_in_flight{backend="gpu",endpoint=%q}`, a), 0)
	}
}

// TestPickedEndpointDownFallsBackBeforeFirstByte: the picked endpoint
// refuses connections; Envoy retries the next endpoint of the pick and the
// client never sees the failure. With a health check marking it unhealthy,
// Envoy's override-host policy still tries it first (it does not look at
// health), so the fallback retry is what keeps the request whole.
func TestPickedEndpointDownFallsBackBeforeFirstByte(t *testing.T) {
	dead := closedPort(t)
	e2, e3 := startKillable(t, "e2"), startKillable(t, "e3")
	for _, health := range []bool{false, true} {
		t.Run(fmt.Sprintf("health_check=%v", health), func(t *testing.T) {
			g := pickingGateway(t, []string{dead, e2.addr, e3.addr}, health)
			if health {
				time.Sleep(time.Second) // a few health check rounds
			}
			// Equal endpoints take turns, so three requests pick each once.
			pickedDead := 0
			for range 3 {
				s := pickRequest(t, g, "pk")
				assert.Contains(t, []string{"e2", "e3"}, s.backend)
				if s.picked != dead {
					assert.Equal(t, s.picked, s.upstream, "a live pick serves")
					continue
				}
				pickedDead++
				assert.Contains(t, []string{e2.addr, e3.addr}, s.upstream, "a fallback of the pick served")
				t.Logf("health_check=%v: picked %s, served by %s after %v attempts", health, s.picked, s.upstream, s.attempts)
				assert.EqualValues(t, 2, s.attempts, "one retry after the connect failure")
			}
			assert.Equal(t, 1, pickedDead, "the dead endpoint takes its turn")
		})
	}
}

// TestPickedEndpointErrorRetriesOnlyRetriableStatus: a 429 or 503 from the
// picked endpoint is retried on the next one before the first byte; a 500
// (the request's own fault, usually) reaches the client.
func TestPickedEndpointErrorRetriesOnlyRetriableStatus(t *testing.T) {
	var addrs []string
	for _, name := range []string{"e1", "e2", "e3"} {
		addrs = append(addrs, startKillable(t, name).addr)
	}
	g := pickingGateway(t, addrs, false)
	for _, code := range []string{"429", "503"} {
		// Equal endpoints take turns: one of three requests picks e1.
		retried := 0
		for range 3 {
			s := pickRequest(t, g, "pk", "x-fakellm-fail", code, "x-fakellm-fail-backend", "e1")
			if s.picked != addrs[0] {
				assert.EqualValues(t, 1, s.attempts, code)
				continue
			}
			retried++
			assert.NotEqual(t, "e1", s.backend, "%s from the pick: a fallback serves", code)
			assert.EqualValues(t, 2, s.attempts, code)
		}
		assert.Equal(t, 1, retried, code)
	}
	saw500 := false
	for range 3 {
		req, err := http.NewRequest(http.MethodPost, g.gateway+"/v1/chat/completions", strings.NewReader(string(chatBody("pk", false, "x"))))
		require.NoError(t, err)
		req.Header.Set("x-fakellm-fail", "500")
		req.Header.Set("x-fakellm-fail-backend", "e1")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Header.Get("x-fakellm-backend") == "e1" {
			saw500 = true
			assert.Equal(t, http.StatusInternalServerError, resp.StatusCode, "a 500 is not retried")
		} else {
			assert.Equal(t, http.StatusOK, resp.StatusCode)
		}
	}
	assert.True(t, saw500, "one of three requests picked e1")
}

// TestOverrideHostIgnoresHealth pins what Envoy 1.40's override-host policy
// does with a picked endpoint its health check marks unhealthy: it sends the
// request there anyway (it looks the address up among all the cluster's
// hosts, whatever their health). docs/picking.md relies on this: the
// picker, not Envoy, must leave failing endpoints out, and the fallback
// retries cover the rest.
func TestOverrideHostIgnoresHealth(t *testing.T) {
	sick, ok := startKillable(t, "sick"), startKillable(t, "ok")
	sick.SetHealthy(false)
	g := pickingGateway(t, []string{sick.addr, ok.addr}, true)
	time.Sleep(time.Second) // a few health check rounds
	// The two endpoints take turns: one of two requests picks the sick one.
	for range 2 {
		s := pickRequest(t, g, "pk")
		if s.picked != sick.addr {
			continue
		}
		assert.Equal(t, "sick", s.backend, "Envoy sent the request to the unhealthy picked endpoint")
		assert.EqualValues(t, 1, s.attempts)
		return
	}
	t.Fatal("the sick endpoint was never picked")
}

// TestFailoverChainWithPickingBackend: a failover chain whose first backend
// picks is not picked for (Envoy's aggregate cluster does not hand the
// request's metadata to its clusters' load balancers, so a pick would not
// be followed): LEAST_REQUEST balances it, and it still fails over to the
// next backend when none of the first backend's endpoints answers.
func TestFailoverChainWithPickingBackend(t *testing.T) {
	e1 := startKillable(t, "e1")
	g := pickingGateway(t, []string{e1.addr}, false)
	s := pickRequest(t, g, "chain")
	assert.Equal(t, "e1", s.backend)
	assert.Empty(t, s.picked, "no pick the aggregate cluster would ignore")

	g = pickingGateway(t, []string{closedPort(t), closedPort(t)}, false)
	s = pickRequest(t, g, "chain")
	assert.Equal(t, "backend-b", s.backend)
}

// TestPickingFollowsReload: a reload that changes the endpoint list changes
// what Streamgate picks from.
func TestPickingFollowsReload(t *testing.T) {
	e1, e2 := startKillable(t, "e1"), startKillable(t, "e2")
	g := pickingGateway(t, []string{e1.addr}, false)
	s := pickRequest(t, g, "pk")
	require.Equal(t, e1.addr, s.picked)
	require.Equal(t, "e1", s.backend)

	cur, err := os.ReadFile(g.configPath)
	require.NoError(t, err)
	require.Contains(t, string(cur), "["+e1.addr+"]")
	writeConfig(t, g, strings.Replace(string(cur), "["+e1.addr+"]", "["+e2.addr+"]", 1))
	waitScrape(t, g, `streamgate_config_reloads_total{result="success"} 1`)
	require.Eventually(t, func() bool {
		s = pickRequest(t, g, "pk")
		return s.picked == e2.addr
	}, 5*time.Second, 50*time.Millisecond, "picking still names the removed endpoint")
	assert.Equal(t, "e2", s.backend)
	assert.Equal(t, e2.addr, s.upstream)
}

package extproc

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

// waitLimit bounds every wait for a condition in these tests: far above
// what a loaded 2-core machine needs for a stream's end to reach the
// server (milliseconds), short enough that a leak fails in seconds.
const waitLimit = 5 * time.Second

// waitGauge waits until the gauge name in reg reads want, failing the test
// with why when waitLimit passes first.
func waitGauge(t *testing.T, reg *prometheus.Registry, name string, want float64, why string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for gauge(t, reg, name) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s is %v after %v, want %v", why, name, gauge(t, reg, name), waitLimit, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitActive waits until srv counts want open streams.
func waitActive(t *testing.T, srv *Server, want int64, why string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for srv.Active() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d streams active after %v, want %d", why, srv.Active(), waitLimit, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMainStreamClientGoneFreesReservation: a request whose response stays
// on the main ext_proc stream (usage read inline) and whose stream Envoy cancels because the client
// left releases its reservation, before or during the response.
func TestMainStreamClientGoneFreesReservation(t *testing.T) {
	for name, chunks := range map[string]int{"before the response": 0, "mid-response": 1} {
		t.Run(name, func(t *testing.T) {
			srv, client, _, reg := reportServer(t, limitedYAML+"  read_usage: inline\n")
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			main, err := client.Process(ctx)
			require.NoError(t, err)
			exchange := func(m *extprocsvcv3.ProcessingRequest) *extprocsvcv3.ProcessingResponse {
				t.Helper()
				require.NoError(t, main.Send(m))
				r, err := main.Recv()
				require.NoError(t, err)
				return r
			}
			exchange(reqHeaders("POST", "/v1/chat/completions", false))
			br := exchange(bodyMsg(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
			require.Empty(t, reportKeyOf(br), "the response stays on the main stream")
			for range chunks {
				exchange(withStatus(respBody(`data: {"choices":[{"delta":{"content":"hi"}}]}`+"\n\n", false), 200))
			}
			assert.InDelta(t, 1, gauge(t, reg, "streamgate_reservations_outstanding"), 0)
			cancel() // Envoy resets the ext_proc stream when the client goes
			waitGauge(t, reg, "streamgate_reservations_outstanding", 0, "a cancelled main stream frees its reservation")
			waitActive(t, srv, 0, "a cancelled main stream is no longer active")
		})
	}
}

// TestReconcileChargesBackendUsage: at the response's end the reservation
// is settled with the usage the backend reported (11 in, 5 out for the
// stream; 3 in, 4 out for the JSON body), not the gateway's own estimate
// of the input and count of the output.
func TestReconcileChargesBackendUsage(t *testing.T) {
	for name, tc := range map[string]struct {
		body     string
		response []*extprocsvcv3.ProcessingRequest
		in, out  float64
	}{
		"stream": {
			body:     `{"model":"m","stream":true,"messages":[{"role":"user","content":"a prompt of several words"}]}`,
			response: []*extprocsvcv3.ProcessingRequest{withStatus(respBody(usageStream, true), 200)},
			in:       11, out: 5,
		},
		"json body": {
			body: `{"model":"m","messages":[{"role":"user","content":"a prompt of several words"}]}`,
			response: []*extprocsvcv3.ProcessingRequest{
				withStatus(respBody(`{"choices":[{"message":{"content":"a longer answer than four tokens, surely"}}],`, false), 200),
				respBody(`"usage":{"prompt_tokens":3,"completion_tokens":4}}`, true),
			},
			in: 3, out: 4,
		},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := config.Parse("t.yaml", []byte(limitedYAML))
			require.NoError(t, err)
			reg := prometheus.NewRegistry()
			lim, err := NewLimits(cfg, nil, reg)
			require.NoError(t, err)
			p := newProcessor(NewRoutes(cfg, 1), 1<<20, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			p.ctx, p.limits = t.Context(), lim
			p.handle(reqHeaders("POST", "/v1/chat/completions", false))
			require.Nil(t, p.handle(bodyMsg(tc.body)).GetImmediateResponse())
			for _, m := range tc.response {
				p.handle(m)
			}
			assert.InDelta(t, 0, gauge(t, reg, "streamgate_reservations_outstanding"), 0, "settled at the response's end")
			assert.InDelta(t, tc.in, reconciled(t, reg, "input"), 0, "input charged from the backend's usage")
			assert.InDelta(t, tc.out, reconciled(t, reg, "output"), 0, "output charged from the backend's usage")
		})
	}
}

// reconciled reads streamgate_tokens_reconciled_total for direction.
func reconciled(t *testing.T, reg *prometheus.Registry, direction string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "streamgate_tokens_reconciled_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "direction" && l.GetValue() == direction {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no streamgate_tokens_reconciled_total{direction=%q}", direction)
	return 0
}

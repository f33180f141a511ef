package extproc

import (
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/extproctest"
	"github.com/streamgate/streamgate/extproc/picking"
)

const pickingConfig = `
backends:
  - name: gpu
    protocol: openai
    endpoints: [10.0.0.1:8000, 10.0.0.2:8000, 10.0.0.3:8000]
    picking: {metrics: none, fallbacks: 2}
  - name: plain
    protocol: openai
    endpoints: [10.0.1.1:8000]
models:
  - name: m
    backend: gpu
    upstream_model: base-lora
  - name: chained
    backend: gpu
    fallbacks: [plain]
  - name: p
    backend: plain
`

// translatingConfig adds a backend with picking that chat requests reach
// through a translation: every chat request's stream then stays open for
// its response.
const translatingConfig = `
backends:
  - name: gpu
    protocol: openai
    endpoints: [10.0.0.1:8000, 10.0.0.2:8000, 10.0.0.3:8000]
    picking: {metrics: none}
  - name: claude
    protocol: anthropic
    endpoints: [10.0.2.1:8000]
    picking: {metrics: none}
models:
  - name: m
    backend: gpu
  - name: c
    backend: claude
`

// pickingServer is a server picking for pickingConfig's backends, and its pool.
func pickingServer(t *testing.T, src string) (*Server, *picking.Pool) {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(src))
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	pool := picking.NewPool(prometheus.NewRegistry(), log)
	t.Cleanup(pool.Close)
	pool.Update(cfg)
	srv := NewServer(cfg, NewRoutes(cfg, 1), log, nil)
	srv.SetPicking(pool)
	return srv, pool
}

// inFlight is the backend's in-flight count per endpoint.
func inFlight(pool *picking.Pool, backend string) map[string]int64 {
	out := map[string]int64{}
	for _, e := range pool.Backend(backend).Endpoints() {
		out[e.Addr] = e.InFlight()
	}
	return out
}

func lbMetadata(r *extprocsvcv3.ProcessingResponse) (endpoints, picked, reason string) {
	md := r.GetDynamicMetadata().GetFields()
	endpoints = md[contract.LBNamespace].GetStructValue().GetFields()[contract.DestinationEndpointKey].GetStringValue()
	sg := md[contract.MetadataNamespace].GetStructValue().GetFields()
	return endpoints, sg[contract.MetaPickedEndpoint].GetStringValue(), sg[contract.MetaPickReason].GetStringValue()
}

func TestBodyAnswerTellsEnvoyThePickedEndpoints(t *testing.T) {
	tests := map[string]struct {
		model, path string
		wantPick    bool
		config      string
	}{
		"backend with picking":             {model: "m", path: "/v1/chat/completions", wantPick: true},
		"failover chain is not picked for": {model: "chained", path: "/v1/chat/completions"},
		"completions":                      {model: "m", path: "/v1/completions", wantPick: true},
		"translated backend with picking": {
			model: "c", path: "/v1/chat/completions", wantPick: true, config: translatingConfig,
		},
		"backend without picking": {model: "p", path: "/v1/chat/completions"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if tc.config == "" {
				tc.config = pickingConfig
			}
			srv, _ := pickingServer(t, tc.config)
			body := `{"model":"` + tc.model + `","messages":[{"role":"user","content":"hi"}]}`
			if tc.path == "/v1/completions" {
				body = `{"model":"` + tc.model + `","prompt":"hi"}`
			}
			st := extproctest.NewStream(t.Context(), reqHeaders("POST", tc.path, false), bodyMsg(body))
			require.NoError(t, srv.Process(st))
			require.Len(t, st.Sent, 2)
			br := st.Sent[1]
			require.NotNil(t, br.GetRequestBody(), "the body is answered, not refused")
			eps, picked, reason := lbMetadata(br)
			if !tc.wantPick {
				assert.NotContains(t, br.GetDynamicMetadata().GetFields(), contract.LBNamespace)
				assert.Empty(t, picked)
				return
			}
			list := strings.Split(eps, ",")
			assert.NotEmpty(t, list[0])
			assert.Equal(t, list[0], picked, "the access log names the first endpoint Envoy is told")
			assert.Equal(t, picking.ReasonInFlight, reason)
			if tc.model != "c" {
				assert.Len(t, list, 3, "the pick and fallbacks: 2")
				assert.ElementsMatch(t, []string{"10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"}, list)
			}
		})
	}
}

func TestPickSteersAwayFromEndpointWithOpenRequests(t *testing.T) {
	srv, pool := pickingServer(t, pickingConfig)
	// One request in flight on whichever endpoint it was picked for.
	held := pool.Backend("gpu").Pick(picking.Request{}, time.Now())
	defer held.Done()
	st := extproctest.NewStream(t.Context(), reqHeaders("POST", "/v1/chat/completions", false), bodyMsg(`{"model":"m","messages":[]}`))
	require.NoError(t, srv.Process(st))
	_, picked, _ := lbMetadata(st.Sent[1])
	assert.NotEqual(t, held.Endpoints[0], picked, "a new request avoids the endpoint with a request in flight")
}

// hookStream runs before when its requests are used up, then ends like
// Envoy closing the stream; or fails every Send when sendErr is set.
type hookStream struct {
	*extproctest.Stream
	before  func()
	sendErr error
}

func (s *hookStream) Recv() (*extprocsvcv3.ProcessingRequest, error) {
	if len(s.Reqs) == 0 && s.before != nil {
		s.before()
	}
	return s.Stream.Recv()
}

func (s *hookStream) Send(r *extprocsvcv3.ProcessingResponse) error {
	if s.sendErr != nil {
		if _, ok := r.GetResponse().(*extprocsvcv3.ProcessingResponse_RequestBody); ok {
			return s.sendErr
		}
	}
	return s.Stream.Send(r)
}

func TestPickEndsOnceWhenTheRequestEnds(t *testing.T) {
	sum := func(m map[string]int64) (n int64) {
		for _, v := range m {
			n += v
		}
		return n
	}
	tests := map[string]struct {
		model, body string
		config      string
		sendErr     error
		// open is the in-flight count while the stream is still open
		// after the body answer; -1 when the stream ends at the answer.
		open int64
	}{
		"picked pass-through stays open to the end": {model: "m", config: pickingConfig, open: 1},
		"request with a response phase ends later":  {model: "m", config: translatingConfig, open: 1},
		"translated request ends with its response": {
			model: "c", body: `[{"role":"user","content":"hi"}]`, config: translatingConfig, open: 1,
		},
		"refused after the pick (translation)": {model: "c", config: translatingConfig, open: -1},
		"refused before the pick":              {model: "nope", config: pickingConfig, open: -1},
		"Envoy gone before the answer":         {model: "m", config: pickingConfig, sendErr: errors.New("stream reset"), open: -1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			srv, pool := pickingServer(t, tc.config)
			if tc.body == "" {
				tc.body = "[]"
			}
			backend := "gpu"
			if tc.model == "c" {
				backend = "claude"
			}
			st := &hookStream{Stream: extproctest.NewStream(t.Context(), reqHeaders("POST", "/v1/chat/completions", false),
				bodyMsg(`{"model":"`+tc.model+`","messages":`+tc.body+`}`)), sendErr: tc.sendErr}
			opened := int64(-1)
			st.before = func() { opened = sum(inFlight(pool, backend)) }
			err := srv.Process(st)
			if tc.sendErr != nil {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tc.open, opened, "in flight while the stream is open")
			assert.Zero(t, sum(inFlight(pool, backend)), "the pick is ended exactly once when the stream ends")
		})
	}
}

func TestPromptOfIsTheRawFieldOfTheBody(t *testing.T) {
	tests := map[string]struct {
		ep   endpoint
		body string
		want string
	}{
		"chat messages":      {endpointChat, `{"model":"m","messages":[{"role":"user","content":"a"}],"stream":true}`, `[{"role":"user","content":"a"}]`},
		"completions prompt": {endpointCompletions, `{"model":"m","prompt":"once upon","messages":1}`, `"once upon"`},
		"embeddings input":   {endpointEmbeddings, `{"input":["x","y"],"model":"m"}`, `["x","y"]`},
		"anthropic messages": {endpointMessages, `{"model":"m","system":"s","messages":[]}`, `[]`},
		"absent":             {endpointChat, `{"model":"m"}`, ``},
		"nested not matched": {endpointChat, `{"model":"m","x":{"messages":[1]}}`, ``},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			body := []byte(tc.body)
			info, err := parseRequest(body, nil)
			require.NoError(t, err)
			got := promptOf(body, tc.ep, &info)
			assert.Equal(t, tc.want, string(got))
			if len(got) > 0 {
				assert.Same(t, &body[strings.Index(tc.body, tc.want)], &got[0], "a slice of the body, not a copy")
			}
		})
	}
}

func FuzzPromptOf(f *testing.F) {
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"a"}]}`))
	f.Add([]byte(`{"model":"m","prompt":"x","input":[1]}`))
	f.Add([]byte(`{"messages":"\u0041","messages":[]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		info, err := parseRequest(body, nil)
		if err != nil {
			return // promptOf reads only bodies parseRequest accepted
		}
		keys := map[endpoint]string{endpointChat: "messages", endpointCompletions: "prompt", endpointEmbeddings: "input"}
		for ep, key := range keys {
			got := promptOf(body, ep, &info)
			// The field as a path lookup finds it (parseRequest made sure
			// it appears once, spelled exactly).
			if want := gjson.GetBytes(body, key).Raw; string(got) != want {
				t.Fatalf("promptOf(%q, %s) = %q, want %q", body, key, got, want)
			}
			if len(got) == 0 {
				continue
			}
			if !gjson.ValidBytes(got) {
				t.Fatalf("promptOf(%q) = %q, not a JSON value", body, got)
			}
			if cap(got) != len(got) {
				t.Fatalf("promptOf(%q) may be appended to over the body", body)
			}
		}
	})
}

// BenchmarkPickedExchange is BenchmarkProcessorExchange's request to a
// backend with picking, with and without the pool: the difference is what
// picking adds to a request (finding the prompt, the pick, the metadata).
func BenchmarkPickedExchange(b *testing.B) {
	cfg, err := config.Parse("bench.yaml", []byte(`backends:
  - name: bench
    protocol: openai
    endpoints: [10.0.0.1:8000, 10.0.0.2:8000, 10.0.0.3:8000, 10.0.0.4:8000]
    picking: {metrics: none}
models:
  - name: bench-model
    backend: bench
`))
	if err != nil {
		b.Fatal(err)
	}
	routes := NewRoutes(cfg, 0)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	pool := picking.NewPool(prometheus.NewRegistry(), log)
	b.Cleanup(pool.Close)
	pool.Update(cfg)
	for _, on := range []bool{false, true} {
		for _, s := range benchSizes {
			body := benchBody("bench-model", s.size)
			headers, bodyReq := benchHeaders(len(body)), benchBodyRequest(body)
			b.Run("picking="+strconv.FormatBool(on)+"/"+s.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					p := newProcessor(routes, cfg.Gateway.MaxRequestBodyBytes, log, nil)
					if on {
						p.pick.pool = pool
					}
					p.handle(headers)
					if r := p.handle(bodyReq); r.GetRequestBody() == nil {
						b.Fatalf("body answered %v", r)
					}
					p.finish()
				}
			})
		}
	}
}

package extproc

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/extproctest"
	"github.com/streamgate/streamgate/extproc/picking"
)

const (
	eppA = "127.0.0.1:8001"
	eppB = "127.0.0.1:8002"
	eppC = "127.0.0.1:8003"
)

const eppConfig = `backends:
  - name: pool
    protocol: openai
    endpoints: [127.0.0.1:8001, 127.0.0.1:8002, 127.0.0.1:8003]
    picking: {metrics: none}
models:
  - {name: m, backend: pool}
`

// eppFixture is an EPP over the three endpoints of eppConfig.
type eppFixture struct {
	epp     *EPP
	pool    *picking.Pool
	metrics *EPPMetrics
}

func newEPPFixture(t testing.TB) *eppFixture {
	t.Helper()
	cfg, err := config.Parse("epp.yaml", []byte(eppConfig))
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	pool := picking.NewPool(reg, log)
	pool.Update(cfg)
	t.Cleanup(pool.Close)
	m := NewEPPMetrics(reg)
	return &eppFixture{epp: NewEPP(pool, "pool", 1<<20, log, m), pool: pool, metrics: m}
}

// inFlight is each endpoint's in-flight count, by address.
func (f *eppFixture) inFlight() map[string]int64 {
	out := map[string]int64{}
	for _, ep := range f.pool.Backend("pool").Endpoints() {
		out[ep.Addr] = ep.InFlight()
	}
	return out
}

// run plays reqs on one stream and returns the answers.
func (f *eppFixture) run(t *testing.T, reqs ...*extprocsvcv3.ProcessingRequest) []*extprocsvcv3.ProcessingResponse {
	t.Helper()
	s := extproctest.NewStream(context.Background(), reqs...)
	require.NoError(t, f.epp.Process(s))
	return s.Sent
}

func eppHeaders(mode extprocv3.ProcessingMode_BodySendMode, endOfStream bool, md *corev3.Metadata) *extprocsvcv3.ProcessingRequest {
	return &extprocsvcv3.ProcessingRequest{
		Request: &extprocsvcv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocsvcv3.HttpHeaders{
			Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
				{Key: ":path", RawValue: []byte("/v1/chat/completions")},
				{Key: contract.RequestIDHeader, RawValue: []byte("req-1")},
			}},
			EndOfStream: endOfStream,
		}},
		ProtocolConfig:  &extprocsvcv3.ProtocolConfiguration{RequestBodyMode: mode},
		MetadataContext: md,
	}
}

func eppBody(body string, md *corev3.Metadata) *extprocsvcv3.ProcessingRequest {
	return &extprocsvcv3.ProcessingRequest{
		Request:         &extprocsvcv3.ProcessingRequest_RequestBody{RequestBody: &extprocsvcv3.HttpBody{Body: []byte(body), EndOfStream: true}},
		MetadataContext: md,
	}
}

// eppChunk is one request or response body chunk.
func eppChunk(response bool, body string, eos bool) *extprocsvcv3.ProcessingRequest {
	b := &extprocsvcv3.HttpBody{Body: []byte(body), EndOfStream: eos}
	if response {
		return &extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_ResponseBody{ResponseBody: b}}
	}
	return &extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_RequestBody{RequestBody: b}}
}

// duplexHeaders are request headers announcing full-duplex bodies both ways.
func duplexHeaders(md *corev3.Metadata) *extprocsvcv3.ProcessingRequest {
	req := eppHeaders(extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED, false, md)
	req.ProtocolConfig.ResponseBodyMode = extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED
	return req
}

// streamed returns the body a full-duplex answer carries on.
func streamed(t *testing.T, resp *extprocsvcv3.ProcessingResponse) (string, bool) {
	t.Helper()
	br := resp.GetRequestBody()
	if br == nil {
		br = resp.GetResponseBody()
	}
	sr := br.GetResponse().GetBodyMutation().GetStreamedResponse()
	require.NotNil(t, sr, "a full-duplex body answer must be a streamed response")
	return string(sr.GetBody()), sr.GetEndOfStream()
}

func eppResponseHeaders(served string) *extprocsvcv3.ProcessingRequest {
	req := &extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocsvcv3.HttpHeaders{
		Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: ":status", RawValue: []byte("200")}}},
	}}}
	if served != "" {
		req.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			contract.LBNamespace: {Fields: map[string]*structpb.Value{contract.DestinationServedKey: structpb.NewStringValue(served)}},
		}}
	}
	return req
}

// subsetHint is the filter metadata a data plane sends to restrict the pick.
func subsetHint(v *structpb.Value) *corev3.Metadata {
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		contract.SubsetNamespace: {Fields: map[string]*structpb.Value{contract.SubsetKey: v}},
	}}
}

func subsetList(addrs ...string) *structpb.Value {
	vs := make([]*structpb.Value, len(addrs))
	for i, a := range addrs {
		vs[i] = structpb.NewStringValue(a)
	}
	return structpb.NewListValue(&structpb.ListValue{Values: vs})
}

// destination returns what a pick answer tells Envoy: the header value and
// the envoy.lb metadata value.
func destination(t *testing.T, resp *extprocsvcv3.ProcessingResponse) (hdr, meta string) {
	t.Helper()
	var common *extprocsvcv3.CommonResponse
	switch r := resp.Response.(type) {
	case *extprocsvcv3.ProcessingResponse_RequestBody:
		common = r.RequestBody.GetResponse()
	case *extprocsvcv3.ProcessingResponse_RequestHeaders:
		common = r.RequestHeaders.GetResponse()
	default:
		t.Fatalf("answer %T carries no pick", resp.Response)
	}
	hdr = setHeaders(common.GetHeaderMutation())[contract.DestinationEndpointKey]
	meta = resp.GetDynamicMetadata().GetFields()[contract.LBNamespace].GetStructValue().GetFields()[contract.DestinationEndpointKey].GetStringValue()
	return hdr, meta
}

// assertPick checks that a destination list names exactly the eligible
// endpoints (the pick, then the fallbacks, in the scorers' order) and
// returns the picked one.
func assertPick(t *testing.T, dest string, eligible ...string) string {
	t.Helper()
	got := strings.Split(dest, ",")
	assert.ElementsMatch(t, eligible, got, "destination %q", dest)
	return got[0]
}

func TestEPPAnswersBufferedBodyWithDestinationHeaderAndMetadata(t *testing.T) {
	f := newEPPFixture(t)
	sent := f.run(t,
		eppHeaders(extprocv3.ProcessingMode_BUFFERED, false, nil),
		eppBody(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`, nil),
		eppResponseHeaders(eppA),
	)
	require.Len(t, sent, 3)
	assert.Nil(t, sent[0].GetRequestHeaders().GetResponse(), "headers pass unchanged; the pick waits for the body")
	hdr, meta := destination(t, sent[1])
	picked := assertPick(t, hdr, eppA, eppB, eppC) // the pick, then picking.fallbacks (2) next-best
	assert.Equal(t, hdr, meta, "header and envoy.lb metadata carry the same value")
	assert.NotNil(t, sent[2].GetResponseHeaders())
	assert.Equal(t, 1, testutil.CollectAndCount(f.metrics.picks))
	assert.InDelta(t, 1, testutil.ToFloat64(f.metrics.serves.WithLabelValues("pool", eppA, strconv.FormatBool(picked != eppA))), 0,
		"Envoy reported eppA: a fallback unless it was the pick")
	assert.Equal(t, map[string]int64{eppA: 0, eppB: 0, eppC: 0}, f.inFlight(), "the pick ends with the stream")
}

func TestEPPPicksAtHeadersWhenNoBufferedBodyFollows(t *testing.T) {
	for name, tc := range map[string]struct {
		mode        extprocv3.ProcessingMode_BodySendMode
		endOfStream bool
	}{
		"buffered, no body":    {extprocv3.ProcessingMode_BUFFERED, true},
		"body not sent":        {extprocv3.ProcessingMode_NONE, false},
		"streamed body":        {extprocv3.ProcessingMode_STREAMED, false},
		"full duplex, no body": {extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED, true},
		"no protocol_config?":  {extprocv3.ProcessingMode_NONE, true},
	} {
		t.Run(name, func(t *testing.T) {
			f := newEPPFixture(t)
			sent := f.run(t, eppHeaders(tc.mode, tc.endOfStream, nil))
			require.Len(t, sent, 1)
			hdr, meta := destination(t, sent[0])
			assertPick(t, hdr, eppA, eppB, eppC)
			assert.Equal(t, hdr, meta)
		})
	}
}

func TestEPPSubsetHintRestrictsThePick(t *testing.T) {
	for name, tc := range map[string]struct {
		hint *structpb.Value
		want []string // nil means 503
	}{
		"one endpoint":            {subsetList(eppB), []string{eppB}},
		"two endpoints":           {subsetList(eppC, eppB), []string{eppB, eppC}},
		"foreign entries ignored": {subsetList("10.9.9.9:80", eppC), []string{eppC}},
		"comma-separated string":  {structpb.NewStringValue(eppC + ", " + eppB), []string{eppB, eppC}},
		"every endpoint":          {subsetList(eppA, eppB, eppC), []string{eppA, eppB, eppC}},
		"empty list":              {subsetList(), nil},
		"no eligible endpoint":    {subsetList("10.9.9.9:80", "127.0.0.1:9999"), nil},
		"not a list":              {structpb.NewNumberValue(3), nil},
	} {
		t.Run(name, func(t *testing.T) {
			f := newEPPFixture(t)
			sent := f.run(t,
				eppHeaders(extprocv3.ProcessingMode_BUFFERED, false, subsetHint(tc.hint)),
				eppBody(`{"model":"m","prompt":"x"}`, subsetHint(tc.hint)),
			)
			require.Len(t, sent, 2)
			if tc.want == nil {
				ir := sent[1].GetImmediateResponse()
				require.NotNil(t, ir, "no eligible endpoint is refused")
				assert.EqualValues(t, http.StatusServiceUnavailable, ir.GetStatus().GetCode())
				assert.Equal(t, "streamgate_epp_no_endpoint", ir.GetDetails())
				var body map[string]map[string]any
				require.NoError(t, json.Unmarshal(ir.GetBody(), &body))
				assert.Equal(t, "no_endpoint", body["error"]["code"])
				assert.InDelta(t, 1, testutil.ToFloat64(f.metrics.refusals.WithLabelValues("pool", "no_endpoint")), 0)
				return
			}
			hdr, meta := destination(t, sent[1])
			assertPick(t, hdr, tc.want...)
			assert.Equal(t, hdr, meta)
		})
	}
}

// TestEPPSubsetHintFromHeadersOnly: a hint sent with the request headers
// only still restricts the pick made at the body.
func TestEPPSubsetHintFromHeadersOnly(t *testing.T) {
	f := newEPPFixture(t)
	sent := f.run(t,
		eppHeaders(extprocv3.ProcessingMode_BUFFERED, false, subsetHint(subsetList(eppC))),
		eppBody(`{"model":"m","prompt":"x"}`, nil),
	)
	hdr, _ := destination(t, sent[1])
	assert.Equal(t, eppC, hdr)
}

func TestEPPPicksBodyThatIsNotJSON(t *testing.T) {
	f := newEPPFixture(t)
	sent := f.run(t, eppHeaders(extprocv3.ProcessingMode_BUFFERED, false, nil), eppBody("not json {", nil))
	hdr, _ := destination(t, sent[1])
	assertPick(t, hdr, eppA, eppB, eppC)
}

func TestEPPShedsSaturatedRequestWith429AndRetryAfter(t *testing.T) {
	f := newEPPFixture(t)
	f.epp.pick = func(b *picking.Backend, r picking.Request, now time.Time) picking.Result {
		return picking.Result{Endpoints: []string{eppA}, Reason: picking.ReasonSaturated, Saturated: true}
	}
	sent := f.run(t, eppHeaders(extprocv3.ProcessingMode_BUFFERED, false, nil), eppBody(`{"model":"m"}`, nil))
	ir := sent[1].GetImmediateResponse()
	require.NotNil(t, ir)
	assert.EqualValues(t, http.StatusTooManyRequests, ir.GetStatus().GetCode())
	h := setHeaders(ir.GetHeaders())
	assert.Equal(t, "1", h["retry-after"])
	assert.Equal(t, "application/json", h["content-type"])
	var body map[string]map[string]any
	require.NoError(t, json.Unmarshal(ir.GetBody(), &body))
	assert.Equal(t, "saturated", body["error"]["code"])
	assert.Equal(t, "Every model server is at capacity; retry later.", body["error"]["message"])
}

func TestEPPRefusesWhenBackendDoesNotPick(t *testing.T) {
	f := newEPPFixture(t)
	f.epp.backend = "gone"
	sent := f.run(t, eppHeaders(extprocv3.ProcessingMode_BUFFERED, false, nil), eppBody(`{"model":"m"}`, nil))
	assert.EqualValues(t, http.StatusServiceUnavailable, sent[1].GetImmediateResponse().GetStatus().GetCode())
}

// TestEPPServedFallbackMovesInFlightCount: when Envoy reports that a
// fallback served the request, the request counts on that endpoint until
// the stream ends.
func TestEPPServedFallbackMovesInFlightCount(t *testing.T) {
	f := newEPPFixture(t)
	st := eppStream{epp: f.epp}
	st.handle(eppHeaders(extprocv3.ProcessingMode_BUFFERED, false, nil))
	hdr, _ := destination(t, st.handle(eppBody(`{"model":"m"}`, nil))[0])
	dest := strings.Split(hdr, ",")
	picked, fallback := dest[0], dest[1]
	want := map[string]int64{eppA: 0, eppB: 0, eppC: 0}
	want[picked] = 1
	assert.Equal(t, want, f.inFlight(), "counted on the pick")
	st.handle(eppResponseHeaders(fallback))
	want[picked], want[fallback] = 0, 1
	assert.Equal(t, want, f.inFlight(), "moved to the endpoint that served")
	assert.InDelta(t, 1, testutil.ToFloat64(f.metrics.serves.WithLabelValues("pool", fallback, "true")), 0)
	st.finish()
	assert.Equal(t, map[string]int64{eppA: 0, eppB: 0, eppC: 0}, f.inFlight())
}

func TestEPPServedUnknownEndpointIsLabelledOther(t *testing.T) {
	f := newEPPFixture(t)
	f.run(t, eppHeaders(extprocv3.ProcessingMode_BUFFERED, false, nil), eppBody(`{}`, nil), eppResponseHeaders("10.1.1.1:80"))
	assert.InDelta(t, 1, testutil.ToFloat64(f.metrics.serves.WithLabelValues("pool", "other", "true")), 0)
	assert.Equal(t, map[string]int64{eppA: 0, eppB: 0, eppC: 0}, f.inFlight())
}

// failingStream ends with err after its requests, or fails every Send.
type failingStream struct {
	*extproctest.Stream
	recvErr, sendErr error
}

func (s *failingStream) Recv() (*extprocsvcv3.ProcessingRequest, error) {
	if len(s.Reqs) == 0 {
		return nil, s.recvErr
	}
	return s.Stream.Recv()
}

func (s *failingStream) Send(r *extprocsvcv3.ProcessingResponse) error {
	if s.sendErr != nil {
		return s.sendErr
	}
	return s.Stream.Send(r)
}

// TestEPPReleasesPickWhateverEndsTheStream: the count the pick took ends
// when the stream does: normally, by Envoy resetting it, or by a failed
// send.
func TestEPPReleasesPickWhateverEndsTheStream(t *testing.T) {
	for name, tc := range map[string]struct {
		reqs             []*extprocsvcv3.ProcessingRequest
		recvErr, sendErr error
		wantErr          bool
	}{
		"eof after body":       {reqs: []*extprocsvcv3.ProcessingRequest{eppHeaders(extprocv3.ProcessingMode_BUFFERED, false, nil), eppBody(`{}`, nil)}, recvErr: io.EOF},
		"reset after body":     {reqs: []*extprocsvcv3.ProcessingRequest{eppHeaders(extprocv3.ProcessingMode_BUFFERED, false, nil), eppBody(`{}`, nil)}, recvErr: errors.New("connection reset"), wantErr: true},
		"eof after response":   {reqs: []*extprocsvcv3.ProcessingRequest{eppHeaders(extprocv3.ProcessingMode_BUFFERED, false, nil), eppBody(`{}`, nil), eppResponseHeaders(eppC)}, recvErr: io.EOF},
		"send fails at pick":   {reqs: []*extprocsvcv3.ProcessingRequest{eppHeaders(extprocv3.ProcessingMode_NONE, false, nil)}, sendErr: errors.New("broken"), wantErr: true},
		"eof after headers":    {reqs: []*extprocsvcv3.ProcessingRequest{eppHeaders(extprocv3.ProcessingMode_BUFFERED, false, nil)}, recvErr: io.EOF},
		"eof while holding":    {reqs: []*extprocsvcv3.ProcessingRequest{duplexHeaders(nil), eppChunk(false, `{"mo`, false)}, recvErr: io.EOF},
		"reset after duplex":   {reqs: []*extprocsvcv3.ProcessingRequest{duplexHeaders(nil), eppChunk(false, `{}`, true)}, recvErr: errors.New("reset"), wantErr: true},
		"refused by empty set": {reqs: []*extprocsvcv3.ProcessingRequest{eppHeaders(extprocv3.ProcessingMode_NONE, false, subsetHint(subsetList()))}, recvErr: io.EOF},
	} {
		t.Run(name, func(t *testing.T) {
			f := newEPPFixture(t)
			s := &failingStream{Stream: extproctest.NewStream(context.Background(), tc.reqs...), recvErr: tc.recvErr, sendErr: tc.sendErr}
			err := f.epp.Process(s)
			if tc.wantErr {
				assert.Error(t, err)
			} else {
				assert.NoError(t, err)
			}
			assert.Equal(t, map[string]int64{eppA: 0, eppB: 0, eppC: 0}, f.inFlight())
		})
	}
}

// TestEPPOverGRPC runs the EPP as a gRPC server and picks over a real
// ext_proc stream.
func TestEPPOverGRPC(t *testing.T) {
	f := newEPPFixture(t)
	client := extproctest.Serve(t, f.epp)
	stream, err := client.Process(context.Background())
	require.NoError(t, err)
	require.NoError(t, stream.Send(eppHeaders(extprocv3.ProcessingMode_BUFFERED, false, nil)))
	_, err = stream.Recv()
	require.NoError(t, err)
	require.NoError(t, stream.Send(eppBody(`{"model":"m","prompt":"hello"}`, nil)))
	resp, err := stream.Recv()
	require.NoError(t, err)
	hdr, meta := destination(t, resp)
	picked := assertPick(t, hdr, eppA, eppB, eppC)
	assert.Equal(t, hdr, meta)
	assert.Equal(t, int64(1), f.inFlight()[picked])
	require.NoError(t, stream.CloseSend())
	_, err = stream.Recv()
	assert.ErrorIs(t, err, io.EOF)
	assert.Eventually(t, func() bool { return f.inFlight()[picked] == 0 }, 2*time.Second, 10*time.Millisecond)
}

func TestEPPRequestReadsPromptAndModel(t *testing.T) {
	for name, tc := range map[string]struct {
		body, prompt, lora string
	}{
		"chat":               {`{"model":"m","messages":[{"role":"system","content":"s"}],"stream":true}`, `[{"role":"system","content":"s"}]`, "m"},
		"completions":        {`{"prompt":"once upon","model":"adapter-1"}`, `"once upon"`, "adapter-1"},
		"token prompt":       {`{"model":"m","prompt":[1,2,3]}`, `[1,2,3]`, "m"},
		"first of repeats":   {`{"model":"a","model":"b","prompt":"p","prompt":"q"}`, `"p"`, "a"},
		"prompt not text":    {`{"model":"m","prompt":{"x":1}}`, ``, "m"},
		"model not a string": {`{"model":7,"messages":[]}`, `[]`, ""},
		"not an object":      {`["model","m"]`, ``, ""},
		"not json":           {`hello`, ``, ""},
		"empty":              {``, ``, ""},
		"truncated":          {`{"model":"m","messages":[{"role":"us`, ``, "m"},
	} {
		t.Run(name, func(t *testing.T) {
			r := eppRequest([]byte(tc.body))
			assert.Equal(t, tc.prompt, string(r.Prompt))
			assert.Equal(t, tc.lora, r.LoRA)
		})
	}
}

func BenchmarkEPPRequest(b *testing.B) {
	body := benchChatBody(32 << 10)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if r := eppRequest(body); r.Prompt == nil {
			b.Fatal("no prompt")
		}
	}
}

// benchChatBody is a chat request of about n bytes.
func benchChatBody(n int) []byte {
	content := make([]byte, n)
	for i := range content {
		content[i] = 'a' + byte(i%26)
	}
	b, _ := json.Marshal(map[string]any{"model": "m", "stream": true, "messages": []map[string]string{{"role": "user", "content": string(content)}}, "max_tokens": 100})
	return b
}

// TestEPPFullDuplexPicksOnceBodyArrived: in FULL_DUPLEX_STREAMED mode (what
// Istio and Envoy Gateway configure) the headers answer waits for the
// whole body, carries the pick, and the body goes on as streamed answers.
func TestEPPFullDuplexPicksOnceBodyArrived(t *testing.T) {
	f := newEPPFixture(t)
	var seen picking.Request
	f.epp.pick = func(b *picking.Backend, r picking.Request, now time.Time) picking.Result {
		seen = picking.Request{Prompt: append([]byte(nil), r.Prompt...), LoRA: r.LoRA}
		return b.Pick(r, now)
	}
	st := eppStream{epp: f.epp}
	defer st.finish()
	assert.Empty(t, st.handle(duplexHeaders(nil)), "the headers answer is held")
	assert.Empty(t, st.handle(eppChunk(false, `{"model":"m","prompt":"once `, false)))
	out := st.handle(eppChunk(false, `upon"}`, true))
	require.Len(t, out, 2)
	hdr, meta := destination(t, out[0])
	assertPick(t, hdr, eppA, eppB, eppC)
	assert.Equal(t, hdr, meta)
	body, eos := streamed(t, out[1])
	assert.Equal(t, `{"model":"m","prompt":"once upon"}`, body)
	assert.True(t, eos)
	assert.Equal(t, picking.Request{Prompt: []byte(`"once upon"`), LoRA: "m"}, seen, "the pick saw the whole body")

	out = st.handle(eppResponseHeaders(strings.Split(hdr, ",")[0]))
	require.Len(t, out, 1)
	assert.NotNil(t, out[0].GetResponseHeaders())
	out = st.handle(eppChunk(true, "data: x\n\n", false))
	body, eos = streamed(t, out[0])
	assert.Equal(t, "data: x\n\n", body)
	assert.False(t, eos)
}

func TestEPPFullDuplexReleasedByTrailers(t *testing.T) {
	f := newEPPFixture(t)
	st := eppStream{epp: f.epp}
	defer st.finish()
	st.handle(duplexHeaders(nil))
	st.handle(eppChunk(false, `{"prompt":"p"}`, false))
	out := st.handle(&extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_RequestTrailers{RequestTrailers: &extprocsvcv3.HttpTrailers{}}})
	require.Len(t, out, 3)
	destination(t, out[0])
	body, eos := streamed(t, out[1])
	assert.Equal(t, `{"prompt":"p"}`, body)
	assert.False(t, eos, "the trailers end the request")
	assert.NotNil(t, out[2].GetRequestTrailers())
}

// TestEPPFullDuplexBodyOverLimitPicksEarly: a body past maxBody is not
// held further: the pick goes out with what arrived and the rest streams.
func TestEPPFullDuplexBodyOverLimitPicksEarly(t *testing.T) {
	f := newEPPFixture(t)
	f.epp.maxBody = 8
	st := eppStream{epp: f.epp}
	defer st.finish()
	st.handle(duplexHeaders(nil))
	out := st.handle(eppChunk(false, `{"prompt":"long`, false))
	require.Len(t, out, 2)
	destination(t, out[0])
	body, eos := streamed(t, out[1])
	assert.Equal(t, `{"prompt":"long`, body)
	assert.False(t, eos)
	out = st.handle(eppChunk(false, `er"}`, true))
	require.Len(t, out, 1)
	body, eos = streamed(t, out[0])
	assert.Equal(t, `er"}`, body)
	assert.True(t, eos)
}

func TestEPPFullDuplexRefusalEndsRequest(t *testing.T) {
	f := newEPPFixture(t)
	sent := f.run(t, duplexHeaders(subsetHint(subsetList())), eppChunk(false, `{}`, true), eppResponseHeaders(eppA))
	require.Len(t, sent, 1, "nothing after the refusal")
	assert.EqualValues(t, http.StatusServiceUnavailable, sent[0].GetImmediateResponse().GetStatus().GetCode())
	assert.Equal(t, map[string]int64{eppA: 0, eppB: 0, eppC: 0}, f.inFlight())
}

// BenchmarkEPPRequestStream is one buffered request through the EPP: its
// headers, a 32 KiB chat body picked on, the response headers with the
// served endpoint, and the stream's end.
func BenchmarkEPPRequestStream(b *testing.B) {
	f := newEPPFixture(b)
	headers := eppHeaders(extprocv3.ProcessingMode_BUFFERED, false, nil)
	body := &extprocsvcv3.ProcessingRequest{Request: &extprocsvcv3.ProcessingRequest_RequestBody{RequestBody: &extprocsvcv3.HttpBody{Body: benchChatBody(32 << 10), EndOfStream: true}}}
	served := eppResponseHeaders(eppA)
	b.ReportAllocs()
	for b.Loop() {
		st := eppStream{epp: f.epp}
		st.handle(headers)
		st.handle(body)
		st.handle(served)
		st.finish()
	}
}

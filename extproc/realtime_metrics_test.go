package extproc

import (
	"fmt"
	"testing"
	"time"

	alsdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/streamgate/streamgate/contract"
)

func realtimeLogEntry(model, cluster string, status uint32, in, out uint64, d time.Duration) *alsdatav3.HTTPAccessLogEntry {
	hdrs := map[string]string{}
	if model != "" {
		hdrs[contract.ModelHeader] = model
	}
	return &alsdatav3.HTTPAccessLogEntry{
		CommonProperties: &alsdatav3.AccessLogCommon{UpstreamCluster: cluster, Duration: durationpb.New(d)},
		Request:          &alsdatav3.HTTPRequestProperties{RequestHeaders: hdrs, RequestBodyBytes: in},
		Response:         &alsdatav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(status), ResponseBodyBytes: out},
	}
}

func TestRealtimeLogCountsSessionsDurationAndBytes(t *testing.T) {
	routes, _, _ := newGRPCFixture(t)
	m := NewMetrics(prometheus.NewRegistry())
	a := NewAccessLog(m, func() *Routes { return routes }, nil)
	a.recordRealtime(realtimeLogEntry("chat", "vllm", 101, 100, 900, 3*time.Second))
	a.recordRealtime(realtimeLogEntry("chat", "vllm", 101, 10, 90, 20*time.Second))
	a.recordRealtime(realtimeLogEntry("chat", "vllm", 401, 0, 50, time.Millisecond))                   // the backend refused the handshake
	a.recordRealtime(realtimeLogEntry("chat", contract.UnroutedCluster, 401, 0, 50, time.Millisecond)) // refused by ext_proc: not counted
	a.recordRealtime(realtimeLogEntry("", "vllm", 101, 1, 1, time.Second))                             // no verified model: not counted
	a.recordRealtime(realtimeLogEntry("chat", "vllm", 101, maxCallBytes+1, 1, time.Second))            // implausible: dropped
	rt := m.rt
	assert.InDelta(t, 2, testutil.ToFloat64(rt.sessions.WithLabelValues("chat", "vllm", "101")), 0)
	assert.InDelta(t, 1, testutil.ToFloat64(rt.sessions.WithLabelValues("chat", "vllm", "401")), 0)
	assert.InDelta(t, 110, testutil.ToFloat64(rt.bytes.WithLabelValues("chat", "vllm", "request")), 0)
	assert.InDelta(t, 1040, testutil.ToFloat64(rt.bytes.WithLabelValues("chat", "vllm", "response")), 0)
	assert.Equal(t, 2, testutil.CollectAndCount(rt.sessions))
	assert.Equal(t, 1, testutil.CollectAndCount(rt.duration), "only upgraded sessions have a duration")
	NewAccessLog(nil, nil, nil).recordRealtime(realtimeLogEntry("chat", "vllm", 101, 1, 1, time.Second)) // nil metrics: no panic
}

func TestRealtimeLogLabelsAreBounded(t *testing.T) {
	routes, _, _ := newGRPCFixture(t)
	m := NewMetrics(prometheus.NewRegistry())
	a := NewAccessLog(m, func() *Routes { return routes }, nil)
	for i := range 50 {
		a.recordRealtime(realtimeLogEntry(fmt.Sprintf("made-up-%d", i), fmt.Sprintf("cluster-%d", i), 101, 1, 1, time.Second))
	}
	assert.Equal(t, 1, testutil.CollectAndCount(m.rt.sessions))
	assert.InDelta(t, 50, testutil.ToFloat64(m.rt.sessions.WithLabelValues("other", "other", "101")), 0)
}

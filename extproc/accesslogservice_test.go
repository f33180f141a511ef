package extproc

import (
	"fmt"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	alsdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	grpcstatsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_stats/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/streamgate/streamgate/contract"
)

func grpcLogEntry(t *testing.T, model, cluster string, req, resp uint64) *alsdatav3.HTTPAccessLogEntry {
	t.Helper()
	fs, err := anypb.New(&grpcstatsv3.FilterObject{RequestMessageCount: req, ResponseMessageCount: resp})
	require.NoError(t, err)
	hdrs := map[string]string{}
	if model != "" {
		hdrs[contract.ModelHeader] = model
	}
	return &alsdatav3.HTTPAccessLogEntry{
		CommonProperties: &alsdatav3.AccessLogCommon{UpstreamCluster: cluster, FilterStateObjects: map[string]*anypb.Any{contract.GRPCStatsFilterState: fs},
			DownstreamRemoteAddress: &corev3.Address{}},
		Request:  &alsdatav3.HTTPRequestProperties{RequestHeaders: hdrs, RequestBodyBytes: req * 10},
		Response: &alsdatav3.HTTPResponseProperties{ResponseBodyBytes: resp * 20},
	}
}

func TestGRPCLogCountsRoutedCallsPerModel(t *testing.T) {
	routes, _, _ := newGRPCFixture(t)
	m := NewMetrics(prometheus.NewRegistry())
	a := NewAccessLog(m, func() *Routes { return routes }, nil)
	a.record(grpcLogEntry(t, "resnet", "triton", 1000, 3000))
	a.record(grpcLogEntry(t, "resnet", "triton", 1, 2))
	a.record(grpcLogEntry(t, "resnet", contract.UnroutedCluster, 7, 0)) // refused by ext_proc: not counted
	a.record(grpcLogEntry(t, "", "triton", 7, 0))                       // no verified model: not counted
	a.record(grpcLogEntry(t, "speech", "", 7, 0))                       // never reached a cluster
	assert.InDelta(t, 1001, testutil.ToFloat64(m.grpcMessages.WithLabelValues("resnet", "triton", "request")), 0)
	assert.InDelta(t, 3002, testutil.ToFloat64(m.grpcMessages.WithLabelValues("resnet", "triton", "response")), 0)
	assert.InDelta(t, 10010, testutil.ToFloat64(m.grpcBytes.WithLabelValues("resnet", "triton", "request")), 0)
	assert.InDelta(t, 60040, testutil.ToFloat64(m.grpcBytes.WithLabelValues("resnet", "triton", "response")), 0)
	assert.Equal(t, 1, testutil.CollectAndCount(m.grpcMessages, "streamgate_grpc_messages_total")/2)
	NewAccessLog(nil, nil, nil).record(grpcLogEntry(t, "resnet", "triton", 1, 1)) // nil metrics: no panic
}

// TestGRPCLogLabelsAreBounded (issue 23, finding 5): an entry naming a
// model or cluster the config does not know is counted under "other".
func TestGRPCLogLabelsAreBounded(t *testing.T) {
	routes, _, _ := newGRPCFixture(t)
	m := NewMetrics(prometheus.NewRegistry())
	a := NewAccessLog(m, func() *Routes { return routes }, nil)
	for i := range 50 {
		a.record(grpcLogEntry(t, fmt.Sprintf("made-up-%d", i), fmt.Sprintf("cluster-%d", i), 1, 1))
	}
	a.record(grpcLogEntry(t, "resnet", "nowhere", 1, 1))
	assert.Equal(t, 2*2, testutil.CollectAndCount(m.grpcMessages, "streamgate_grpc_messages_total"))
	assert.InDelta(t, 50, testutil.ToFloat64(m.grpcMessages.WithLabelValues("other", "other", "request")), 0)
	assert.InDelta(t, 1, testutil.ToFloat64(m.grpcMessages.WithLabelValues("resnet", "other", "request")), 0)
}

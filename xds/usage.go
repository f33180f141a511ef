package xds

import (
	_ "embed"
	"fmt"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	grpcalsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	aipmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ai_protocol_manager/v3"
	luav3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/lua/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"

	"github.com/streamgate/streamgate/contract"
)

// usageReportFlush is how long Envoy may batch usage reports before
// sending them: a reservation is settled at most this long after its
// stream ended.
const usageReportFlush = 20 * time.Millisecond

// stripUsageLua removes the usage chunk the gateway asked for (MetaStrip).
//
//go:embed strip_usage.lua
var stripUsageLua string

// usageFilters are the filters through which Envoy reads usage, placed
// just before the router so that on the way back they see the backend's
// bytes first: Envoy's AI protocol manager reads each response's token
// usage as it passes (never holding or changing it) and publishes it when
// the stream ends; the strip filter, after it, removes the usage chunk the
// gateway asked for from responses whose metadata says so.
func usageFilters() ([]*hcmv3.HttpFilter, error) {
	read, err := typed(contract.UsageFilter, usageFilter())
	if err != nil {
		return nil, err
	}
	strip, err := typed(contract.StripUsageFilter, stripFilter())
	if err != nil {
		return nil, err
	}
	return []*hcmv3.HttpFilter{strip, read}, nil
}

// usageFilter reads the usage of every 2xx JSON or event-stream response;
// the API is told from the response's shape.
func usageFilter() *aipmv3.AiProtocolManager {
	return &aipmv3.AiProtocolManager{ResponseHandling: &aipmv3.ResponseHandling{
		TokenUsage: &aipmv3.TokenUsageExtraction{IncludeUnconfiguredRoutes: true},
	}}
}

// stripFilter is the Lua filter running stripUsageLua.
func stripFilter() *luav3.Lua {
	return &luav3.Lua{DefaultSourceCode: &corev3.DataSource{
		Specifier: &corev3.DataSource_InlineString{InlineString: stripUsageLua},
	}}
}

// usageReportLog sends Envoy's usage report of every request Streamgate
// handed over (the ones carrying a report key) to Streamgate's access log
// service: the published usage rides in the entry's metadata, the time to
// the backend's first body byte in a custom tag.
func usageReportLog() (*accesslogv3.AccessLog, error) {
	a, err := toAny(&grpcalsv3.HttpGrpcAccessLogConfig{
		CommonConfig: extProcLog(contract.UsageReportLog, usageReportFlush, func(c *grpcalsv3.CommonGrpcAccessLogConfig) {
			c.CustomTags = []*tracingv3.CustomTag{{
				Tag:  contract.ReportTTFTTag,
				Type: &tracingv3.CustomTag_Value{Value: ttftFormat("us")},
			}}
		}),
	})
	if err != nil {
		return nil, fmt.Errorf("cannot encode the usage report log config: %w", err)
	}
	return &accesslogv3.AccessLog{
		Name: grpcAccessLogger,
		Filter: &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_MetadataFilter{
			MetadataFilter: &accesslogv3.MetadataFilter{Matcher: &matcherv3.MetadataMatcher{
				Filter: contract.ReportNamespace,
				Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: contract.ReportKey}}},
				Value:  &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}},
			}},
		}},
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: a},
	}, nil
}

// ttftFormat is the time from the request's first byte to the backend's
// first response body byte, in unit (ms or us): the time to first token
// wherever Envoy reads usage.
func ttftFormat(unit string) string {
	return "%COMMON_DURATION(DS_RX_BEG:US_RX_BODY_BEG:" + unit + ")%"
}

package xds

import (
	"fmt"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	fileaccesslogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"github.com/streamgate/streamgate/contract"
	"google.golang.org/protobuf/types/known/structpb"
)

// accessLogFields is one JSON line per request, written by Envoy when the
// stream ends: Envoy's own timing and status with what ext_proc reported.
// Never credentials or prompt text: only named fields are logged. Requests
// Streamgate refused carry "streamgate_<error code>" in details.
var accessLogFields = map[string]any{
	"time":             "%START_TIME%",
	"request_id":       "%REQ(" + contract.RequestIDHeader + ")%",
	"tenant":           meta(contract.MetaTenant),
	"endpoint":         meta(contract.MetaEndpoint),
	"method":           "%REQ(:METHOD)%",
	"model":            meta(contract.MetaModel),
	"upstream_model":   meta(contract.MetaUpstreamModel),
	"backend":          meta(contract.MetaBackend),
	"version":          meta(contract.MetaVersion),
	"stream":           meta(contract.MetaStream),
	"upstream_cluster": "%UPSTREAM_CLUSTER%",
	"upstream_host":    "%UPSTREAM_HOST%",
	"status":           "%RESPONSE_CODE%",
	"response_flags":   "%RESPONSE_FLAGS%",
	"details":          "%RESPONSE_CODE_DETAILS%",
	"ttfb_ms":          "%RESPONSE_DURATION%",
	"duration_ms":      "%DURATION%",
	"bytes_received":   "%BYTES_RECEIVED%",
	"bytes_sent":       "%BYTES_SENT%",
	"attempts":         "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
	"input_tokens":     meta(contract.MetaInputTokens),
	"output_tokens":    meta(contract.MetaOutputTokens),
	"cost_usd":         meta(contract.MetaCostUSD),
	"ttft_ms":          meta(contract.MetaTTFTMS),
	"response_model":   meta(contract.MetaResponseModel),
	"queue_wait_ms":    meta(contract.MetaQueueWaitMS),
	"limit_decision":   meta(contract.MetaLimitDecision),
	"trace_id":         meta(contract.MetaTraceID),
	"picked_endpoint":  meta(contract.MetaPickedEndpoint),
	"pick_reason":      meta(contract.MetaPickReason),
}

// meta is the access log operator for a key of contract.MetadataNamespace.
func meta(key string) string {
	return "%DYNAMIC_METADATA(" + contract.MetadataNamespace + ":" + key + ")%"
}

// accessLog writes accessLogFields as JSON lines to path.
func accessLog(path string) (*accesslogv3.AccessLog, error) {
	fields, err := structpb.NewStruct(accessLogFields)
	if err != nil {
		return nil, fmt.Errorf("cannot build access log format: %w", err)
	}
	cfg, err := toAny(&fileaccesslogv3.FileAccessLog{
		Path: path,
		AccessLogFormat: &fileaccesslogv3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
			Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: fields},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("cannot encode access log: %w", err)
	}
	return &accesslogv3.AccessLog{
		Name:       wellknown.FileAccessLog,
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: cfg},
	}, nil
}

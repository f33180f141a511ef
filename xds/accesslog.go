package xds

import (
	"fmt"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	fileaccesslogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// accessLogFields is one JSON line per request, written by Envoy when the
// stream ends: Envoy's own timing and status with what ext_proc reported.
// Never credentials or prompt text: only named fields are logged. Requests
// Streamgate refused carry "streamgate_<error code>" in details.
var accessLogFields = map[string]any{
	"time":             "%START_TIME%",
	"request_id":       "%REQ(X-REQUEST-ID)%",
	"tenant":           "%DYNAMIC_METADATA(streamgate:tenant)%",
	"endpoint":         "%DYNAMIC_METADATA(streamgate:endpoint)%",
	"method":           "%REQ(:METHOD)%",
	"model":            "%DYNAMIC_METADATA(streamgate:model)%",
	"upstream_model":   "%DYNAMIC_METADATA(streamgate:upstream_model)%",
	"backend":          "%DYNAMIC_METADATA(streamgate:backend)%",
	"version":          "%DYNAMIC_METADATA(streamgate:version)%",
	"stream":           "%DYNAMIC_METADATA(streamgate:stream)%",
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
	"input_tokens":     "%DYNAMIC_METADATA(streamgate:input_tokens)%",
	"output_tokens":    "%DYNAMIC_METADATA(streamgate:output_tokens)%",
	"cost_usd":         "%DYNAMIC_METADATA(streamgate:cost_usd)%",
	"ttft_ms":          "%DYNAMIC_METADATA(streamgate:ttft_ms)%",
	"response_model":   "%DYNAMIC_METADATA(streamgate:response_model)%",
	"queue_wait_ms":    "%DYNAMIC_METADATA(streamgate:queue_wait_ms)%",
	"limit_decision":   "%DYNAMIC_METADATA(streamgate:limit_decision)%",
	"trace_id":         "%DYNAMIC_METADATA(streamgate:trace_id)%",
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
		Name:       "envoy.access_loggers.file",
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: cfg},
	}, nil
}

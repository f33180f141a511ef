package xds

import (
	"fmt"
	"maps"

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
	"service":          meta(contract.MetaService),
	"operation":        meta(contract.MetaOperation),
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
	"images":           meta(contract.MetaImages),
	"ttft_ms":          meta(contract.MetaTTFTMS),
	"audio_seconds":    meta(contract.MetaAudioSeconds),
	"response_model":   meta(contract.MetaResponseModel),
	"queue_wait_ms":    meta(contract.MetaQueueWaitMS),
	"limit_decision":   meta(contract.MetaLimitDecision),
	"trace_id":         meta(contract.MetaTraceID),
	"picked_endpoint":  meta(contract.MetaPickedEndpoint),
	"pick_reason":      meta(contract.MetaPickReason),
}

// envoyUsageFields replace the usage fields of accessLogFields where Envoy
// reads usage (config.EnvoyReadsUsage). A request metered by Streamgate
// (translated, embeddings, legacy completions) still reports its figures
// in its metadata, which win; for the others Envoy's AI protocol manager
// published the usage (contract.EnvoyUsageNamespace), and the cost is
// priced with the per-million prices ext_proc put in the request's
// metadata, by the same formula as telemetry.Prices.Cost. The time to first
// token is the backend's first body byte for every request.
func envoyUsageFields() map[string]any {
	own := func(key string) string {
		return "metadata.filter_metadata['" + contract.MetadataNamespace + "']['" + key + "']"
	}
	read := func(field string) string {
		return "metadata.typed_filter_metadata['" + contract.EnvoyUsageNamespace + "']." + field
	}
	either := func(key, value string) string {
		return "%TYPED_CEL('" + key + "' in metadata.filter_metadata['" + contract.MetadataNamespace + "'] ? " +
			own(key) + " : " + value + ")%"
	}
	cost := "(double(" + read("input_tokens") + ") * " + own(contract.MetaPriceInput) +
		" + double(" + read("output_tokens") + ") * " + own(contract.MetaPriceOutput) + ") / 1000000.0"
	return map[string]any{
		"input_tokens":   either(contract.MetaInputTokens, "double("+read("input_tokens")+")"),
		"output_tokens":  either(contract.MetaOutputTokens, "double("+read("output_tokens")+")"),
		"response_model": either(contract.MetaResponseModel, read("model")),
		"cost_usd":       either(contract.MetaCostUSD, cost),
		"ttft_ms":        ttftFormat("ms"),
	}
}

// meta is the access log operator for a key of contract.MetadataNamespace.
func meta(key string) string {
	return "%DYNAMIC_METADATA(" + contract.MetadataNamespace + ":" + key + ")%"
}

// accessLog writes accessLogFields as JSON lines to path, with the usage
// fields Envoy's when envoyReads.
func accessLog(path string, envoyReads bool) (*accesslogv3.AccessLog, error) {
	all := accessLogFields
	if envoyReads {
		all = maps.Clone(accessLogFields)
		maps.Copy(all, envoyUsageFields())
	}
	fields, err := structpb.NewStruct(all)
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

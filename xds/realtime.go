package xds

import (
	"fmt"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	grpcalsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/streamgate/streamgate/contract"
)

// websocketUpgrades lets Envoy upgrade requests to WebSocket on every
// route: ext_proc refuses an upgrade anywhere but contract.RealtimePath
// before it reaches a backend, and lets the frames of an admitted
// Realtime session pass without reading them.
func websocketUpgrades() []*hcmv3.HttpConnectionManager_UpgradeConfig {
	return []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}}
}

// realtimeAccessLog sends an entry for every Realtime session, when it
// ends, to the ext_proc server's AccessLogService, carrying the verified
// model header: the server turns it into session, duration and byte
// metrics per model. Envoy sends entries asynchronously.
func realtimeAccessLog() (*accesslogv3.AccessLog, error) {
	a, err := toAny(&grpcalsv3.HttpGrpcAccessLogConfig{
		CommonConfig:                  extProcLog(contract.RealtimeLog, time.Second),
		AdditionalRequestHeadersToLog: []string{contract.ModelHeader},
	})
	if err != nil {
		return nil, fmt.Errorf("cannot encode realtime access log config: %w", err)
	}
	path := &routev3.HeaderMatcher{
		Name: ":path",
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: contract.RealtimePath + "?"},
		}},
	}
	return &accesslogv3.AccessLog{
		Name:       grpcAccessLogger,
		Filter:     &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_HeaderFilter{HeaderFilter: &accesslogv3.HeaderFilter{Header: path}}},
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: a},
	}, nil
}

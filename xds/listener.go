package xds

import (
	"fmt"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

// Names of the resources published in all-in-one mode.
const (
	ListenerName = "streamgate_gateway"
	RouteName    = "streamgate_routes"
)

// gatewayListener is the client-facing listener: an HTTP connection manager
// (HTTP/1.1 and HTTP/2 by negotiation) with the ext_proc filter before the router.
func gatewayListener(cfg *config.Config) (*listenerv3.Listener, error) {
	extProc, err := typed(contract.ExtProcFilter, extProcFilter(cfg))
	if err != nil {
		return nil, err
	}
	router, err := typed(wellknown.Router, &routerv3.Router{})
	if err != nil {
		return nil, err
	}
	grpcStats, err := grpcStatsFilter()
	if err != nil {
		return nil, err
	}
	grpcLog, err := grpcAccessLog()
	if err != nil {
		return nil, err
	}
	early, err := requestIDMutation(cfg)
	if err != nil {
		return nil, err
	}
	rtLog, err := realtimeAccessLog()
	if err != nil {
		return nil, err
	}
	filters := []*hcmv3.HttpFilter{extProc, grpcStats, router}
	logs := []*accesslogv3.AccessLog{grpcLog, rtLog}
	if len(cfg.Services) > 0 {
		svcLog, err := serviceAccessLog()
		if err != nil {
			return nil, err
		}
		logs = append(logs, svcLog)
	}
	if cfg.EnvoyReadsUsage() {
		usage, err := usageFilters()
		if err != nil {
			return nil, err
		}
		report, err := usageReportLog()
		if err != nil {
			return nil, err
		}
		filters = append(append([]*hcmv3.HttpFilter{extProc}, usage...), grpcStats, router)
		logs = append(logs, report)
	}
	strip, err := stripAmz(cfg)
	if err != nil {
		return nil, err
	}
	if strip != nil {
		filters = append([]*hcmv3.HttpFilter{strip}, filters...)
	}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "streamgate",
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: RouteName,
		}},
		HttpFilters: filters,
		// gRPC arrives on the same listener as HTTP/2 (h2c or TLS ALPN).
		Http2ProtocolOptions: downstreamHTTP2Options(cfg.Gateway),
		AccessLog:            logs,
		// Token streams may run for minutes: no overall stream timeout,
		// only an idle timeout for streams that stop moving. The request
		// itself must arrive in time: Envoy stops the request timer once
		// the request is complete or the response has begun (408 else).
		StreamIdleTimeout:     durationpb.New(cfg.Gateway.StreamIdleTimeout),
		RequestHeadersTimeout: durationpb.New(cfg.Gateway.RequestHeadersTimeout),
		RequestTimeout:        durationpb.New(cfg.Gateway.RequestBodyTimeout),
		LocalReplyConfig:      localReplies(cfg),
		// Clients get the id that names their request in the access log.
		AlwaysSetRequestIdInResponse:  true,
		EarlyHeaderMutationExtensions: early,
		UpgradeConfigs:                websocketUpgrades(),
	}
	if cfg.Gateway.AccessLog != "off" {
		al, err := accessLog(cfg.Gateway.AccessLog, cfg.EnvoyReadsUsage())
		if err != nil {
			return nil, err
		}
		hcm.AccessLog = append(hcm.AccessLog, al)
	}
	hcmAny, err := toAny(hcm)
	if err != nil {
		return nil, fmt.Errorf("cannot encode HTTP connection manager: %w", err)
	}
	tls, err := downstreamTLS(cfg)
	if err != nil {
		return nil, err
	}
	return &listenerv3.Listener{
		Name:    ListenerName,
		Address: socketAddress(cfg.Gateway.Listen),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       wellknown.HTTPConnectionManager,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcmAny},
			}},
			TransportSocket: tls,
		}},
	}, nil
}

// extProcFilter asks Streamgate for request headers and the buffered request
// body only; responses stream straight through unless a request overrides
// the mode, so pass-through streams pay no ext_proc round trip per chunk.
func extProcFilter(cfg *config.Config) *extprocv3.ExternalProcessor {
	return &extprocv3.ExternalProcessor{
		GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
				ClusterName: contract.ExtProcCluster,
			}},
		},
		FailureModeAllow: false,
		ProcessingMode: &extprocv3.ProcessingMode{
			RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
			ResponseHeaderMode:  extprocv3.ProcessingMode_SKIP,
			RequestBodyMode:     extprocv3.ProcessingMode_BUFFERED,
			ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
			RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
			ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
		},
		MessageTimeout:    durationpb.New(cfg.ExtProc.MessageTimeout),
		AllowModeOverride: true,
		// Streamgate sets Envoy's per-try timeout header on streaming
		// requests with a first-byte deadline (extproc/deadline.go); the
		// other x-envoy-* headers it never sets.
		MutationRules: &mutationrulesv3.HeaderMutationRules{AllowEnvoy: wrapperspb.Bool(true)},
		ForwardRules:  forwardRules(cfg),
		// The status rides on the first response message Streamgate gets,
		// also when a request skips the response headers phase.
		ResponseAttributes: []string{contract.ResponseCodeAttribute},
		// The verified client certificate's identity, only where clients
		// may present one (a client CA is set): it can authenticate.
		RequestAttributes: requestAttributes(cfg),
		// Per-request facts Streamgate returns (tenant, model, backend,
		// version, error) land here for the access log; the picked
		// endpoints of a backend with picking in envoy.lb, where the
		// override-host policy reads them.
		MetadataOptions: &extprocv3.MetadataOptions{ReceivingNamespaces: &extprocv3.MetadataOptions_MetadataNamespaces{
			Untyped: []string{contract.MetadataNamespace, contract.ReportNamespace, contract.LBNamespace},
		}},
	}
}

// requestAttributes are the attributes sent with the request headers:
// the client certificate's identity where clients may present one.
func requestAttributes(cfg *config.Config) []string {
	if !cfg.WantsClientCerts() {
		return nil
	}
	return clientCertAttributes
}

// backendRoute sends requests whose backend header names cluster to it.
func backendRoute(cfg *config.Config, cluster string) *routev3.Route {
	return &routev3.Route{
		Name: "backend_" + cluster,
		Match: &routev3.RouteMatch{
			PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
			Headers: []*routev3.HeaderMatcher{{
				Name: contract.BackendHeader,
				HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
					MatchPattern: &matcherv3.StringMatcher_Exact{Exact: cluster},
				}},
			}},
		},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
			Timeout:          durationpb.New(0),
			IdleTimeout:      durationpb.New(cfg.Gateway.StreamIdleTimeout),
		}},
		ResponseHeadersToAdd: responseHeadersToAdd(cfg),
	}
}

// rewriteHost sends b's requests with the Host header b needs
// (config.Backend.UpstreamHost: the host a bedrock signature covers, a TLS
// backend's server name), and with b's fixed headers (OpenAI-Organization,
// OpenAI-Project); other backends get the client's Host.
func rewriteHost(r *routev3.Route, b *config.Backend) {
	if b == nil {
		return
	}
	if h := b.UpstreamHost(); h != "" {
		r.GetRoute().HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: h}
	}
	for _, h := range b.UpstreamHeaders() {
		r.RequestHeadersToAdd = append(r.RequestHeadersToAdd, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h[0], Value: h[1]},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
}

// responseHeadersToAdd tells the client which model version served it
// (ext_proc put the chosen version on the request) and, with limits on,
// where it stands against them.
func responseHeadersToAdd(cfg *config.Config) []*corev3.HeaderValueOption {
	hs := []*corev3.HeaderValueOption{{
		Header:       &corev3.HeaderValue{Key: contract.VersionHeader, Value: "%REQ(" + contract.VersionHeader + ")%"},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}}
	if cfg.Limits == nil {
		return hs
	}
	// The budget headers too: a reload may add budgets without changing
	// the routes, and absent values are omitted.
	for _, h := range append(append([]string(nil), contract.RateLimitHeaders...), contract.BudgetHeaders...) {
		hs = append(hs, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h, Value: meta(h)},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	return hs
}

// routeConfig routes on the backend header set by ext_proc: one route per
// backend and one per failover chain.
func routeConfig(cfg *config.Config) (*routev3.RouteConfiguration, error) {
	routes, err := serviceRoutes(cfg)
	if err != nil {
		return nil, err
	}
	for _, b := range sortedBackends(cfg) {
		if b.Protocol == config.ProtocolHTTP {
			continue // reached by its services' routes only
		}
		r := backendRoute(cfg, b.Name)
		rewriteHost(r, &b)
		if err := applyPickingRoute(r, &b); err != nil {
			return nil, err
		}
		routes = append(routes, r)
	}
	for _, chain := range failoverChains(cfg) {
		r, err := failoverRoute(cfg, chain)
		if err != nil {
			return nil, err
		}
		if b := cfg.Backend(chain[0]); b != nil && b.Picking != nil {
			// The chain's own retries move down the chain; only the
			// header goes.
			r.RequestHeadersToRemove = append(r.RequestHeadersToRemove, contract.DestinationEndpointKey)
		}
		routes = append(routes, r)
	}
	uploadRetries(cfg, routes)
	routes = append(routes, uploadRoutes(cfg)...)
	// The catch-all must be a real route, not a direct response: Envoy
	// takes the request body buffer limit from the route matched when the
	// stream starts, before ext_proc has picked the backend. Its cluster has
	// no endpoints; ext_proc answers every request it does not route itself.
	routes = append(routes, &routev3.Route{
		Name:  "unrouted",
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: contract.UnroutedCluster},
		}},
	})
	return &routev3.RouteConfiguration{
		Name: RouteName,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    "streamgate",
			Domains: []string{"*"},
			Routes:  routes,
			// Buffered request bodies (ext_proc reads them whole) may be
			// this large; beyond it Envoy answers 413.
			RequestBodyBufferLimit: wrapperspb.UInt64(uint64(cfg.Gateway.MaxRequestBodyBytes)),
		}},
	}, nil
}

// localReplies gives the replies Envoy makes itself (body too large,
// upstream unreachable, ...) the OpenAI error shape.
// Messages for replies Envoy makes when ext_proc itself fails.
const (
	requestTimeout  = "The request did not arrive in time."
	headersTooLarge = "The request headers are larger than the gateway accepts."
	badHTTP         = "The request is not valid HTTP."
	extProcTimeout  = "The gateway timed out while processing the request."
	extProcFailed   = "The gateway failed to process the request."
)

func statusIs(code uint32) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{
		StatusCodeFilter: &accesslogv3.StatusCodeFilter{Comparison: &accesslogv3.ComparisonFilter{
			Op:    accesslogv3.ComparisonFilter_EQ,
			Value: &corev3.RuntimeUInt32{DefaultValue: code, RuntimeKey: fmt.Sprintf("streamgate.local_reply.%d", code)},
		}},
	}}
}

func localReplies(cfg *config.Config) *hcmv3.LocalReplyConfig {
	tooLarge := fmt.Sprintf("Request body is larger than the gateway limit of %d bytes.", cfg.Gateway.MaxRequestBodyBytes)
	openai := []*hcmv3.ResponseMapper{
		{
			Filter:             statusIs(413),
			BodyFormatOverride: jsonErrorFormat(tooLarge, "invalid_request_error", "request_too_large"),
		},
		{
			// Envoy's header limits (60 KiB, 100 headers; issue 21).
			Filter:             statusIs(431),
			BodyFormatOverride: jsonErrorFormat(headersTooLarge, "invalid_request_error", "request_headers_too_large"),
		},
		{
			// Requests Envoy's HTTP codecs refuse (issue 21: conflicting
			// Content-Length and Transfer-Encoding, bad chunks, NUL in a
			// header): 400 or 501, the connection then closed.
			Filter:             codecError(),
			BodyFormatOverride: jsonErrorFormat(badHTTP, "invalid_request_error", "invalid_http_request"),
		},
		{
			// The request timeouts (request_headers_timeout, request_body_timeout).
			Filter:             statusIs(408),
			BodyFormatOverride: jsonErrorFormat(requestTimeout, "invalid_request_error", "request_timeout"),
		},
		{
			// Upstream failures Envoy detects itself.
			Filter: &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{
				ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: []string{"UH", "UF", "UO", "URX", "UC", "UT", "NR", "SI", "DPE"}},
			}},
			BodyFormatOverride: jsonErrorFormat("%LOCAL_REPLY_BODY%", "server_error", "%RESPONSE_CODE_DETAILS%"),
		},
		// ext_proc itself failing: a message timeout is a 504, a broken
		// stream its status_on_error (500). Streamgate answers neither
		// status itself, so these bodies only replace Envoy's plain text.
		{
			Filter:             statusIs(504),
			BodyFormatOverride: jsonErrorFormat(extProcTimeout, "server_error", "gateway_timeout"),
		},
		{
			Filter:             statusIs(500),
			BodyFormatOverride: jsonErrorFormat(extProcFailed, "server_error", "internal_error"),
		},
	}
	// Anthropic clients (/v1/messages) get the same replies in their shape.
	anthropic := messagesLocalReplies(openai,
		[]string{tooLarge, headersTooLarge, badHTTP, requestTimeout, "%LOCAL_REPLY_BODY%", extProcTimeout, extProcFailed},
		[]string{"request_too_large", "request_too_large", "invalid_request_error", "invalid_request_error", "api_error", "timeout_error", "api_error"})
	// gRPC calls first: the first matching mapper wins.
	mappers := append([]*hcmv3.ResponseMapper{grpcLocalReply(), uploadTooLarge(cfg)}, anthropic...)
	return &hcmv3.LocalReplyConfig{Mappers: append(mappers, openai...)}
}

// codecError matches the replies Envoy's HTTP/1 and HTTP/2 codecs make to
// a request they cannot parse: their response code details start with
// the codec's name.
func codecError() *accesslogv3.AccessLogFilter {
	cel, _ := toAny(&celv3.ExpressionFilter{
		Expression: `response.code_details.startsWith('http1.') || response.code_details.startsWith('http2.')`,
	})
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ExtensionFilter{
		ExtensionFilter: &accesslogv3.ExtensionFilter{Name: celAccessLogFilter, ConfigType: &accesslogv3.ExtensionFilter_TypedConfig{TypedConfig: cel}},
	}}
}

func jsonErrorFormat(message, typ, code string) *corev3.SubstitutionFormatString {
	s, _ := structpb.NewStruct(map[string]any{"error": map[string]any{
		"message": message, "type": typ, "code": code,
	}})
	return &corev3.SubstitutionFormatString{
		Format:      &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: s},
		ContentType: "application/json",
	}
}

// typed wraps a filter config as a named HTTP filter.
func typed(name string, m proto.Message) (*hcmv3.HttpFilter, error) {
	a, err := toAny(m)
	if err != nil {
		return nil, fmt.Errorf("cannot encode %s config: %w", name, err)
	}
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}}, nil
}

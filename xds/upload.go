package xds

import (
	"fmt"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

// uploadRoutes are the routes upload requests (contract.UploadPaths) match
// when their stream starts, before ext_proc has routed them: Envoy takes
// the request body buffer limit from that route, so these carry
// gateway.max_upload_bytes (UploadCap) where every other request gets the virtual
// host's max_request_body_bytes. Like the catch-all they lead to the
// unrouted cluster; ext_proc answers or routes every request on them.
func uploadRoutes(cfg *config.Config) []*routev3.Route {
	rs := make([]*routev3.Route, 0, len(contract.UploadPaths))
	for _, p := range contract.UploadPaths {
		rs = append(rs, &routev3.Route{
			Name:  "upload:" + p,
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: p}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: contract.UnroutedCluster},
			}},
			RequestBodyBufferLimit: wrapperspb.UInt64(uint64(cfg.Gateway.UploadCap())),
		})
	}
	return rs
}

// uploadRetries lets the routes that retry (failover chains, picking
// fallbacks) buffer an upload for its retry: Envoy's router keeps a body
// for retries only up to the buffer limit of the route it forwards on,
// which is the virtual host's max_request_body_bytes unless the route says
// otherwise, so an upload above it would get the first backend's failure
// instead of the fallback. Raising the limit here lets no body grow:
// every body was already capped by the route it matched at the stream's
// start (the catch-all's or an upload route's), before ext_proc routed it.
func uploadRetries(cfg *config.Config, routes []*routev3.Route) {
	if cfg.Gateway.UploadCap() <= cfg.Gateway.MaxRequestBodyBytes {
		return
	}
	for _, r := range routes {
		if r.GetRoute().GetRetryPolicy() != nil {
			r.RequestBodyBufferLimit = wrapperspb.UInt64(uint64(cfg.Gateway.UploadCap()))
		}
	}
}

// uploadTooLarge is the 413 Envoy answers an upload over
// gateway.max_upload_bytes, naming that limit; it goes before the
// general 413 mapper (the first matching mapper wins).
func uploadTooLarge(cfg *config.Config) *hcmv3.ResponseMapper {
	onUpload := make([]*accesslogv3.AccessLogFilter, 0, len(contract.UploadPaths))
	for _, p := range contract.UploadPaths {
		onUpload = append(onUpload, &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_HeaderFilter{
			HeaderFilter: &accesslogv3.HeaderFilter{Header: &routev3.HeaderMatcher{
				Name: ":path",
				HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
					MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: p},
				}},
			}},
		}})
	}
	path := onUpload[0]
	if len(onUpload) > 1 {
		path = &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_OrFilter{
			OrFilter: &accesslogv3.OrFilter{Filters: onUpload},
		}}
	}
	msg := fmt.Sprintf("Request body is larger than the gateway's upload limit of %d bytes.", cfg.Gateway.UploadCap())
	return &hcmv3.ResponseMapper{
		Filter: &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{
			AndFilter: &accesslogv3.AndFilter{Filters: []*accesslogv3.AccessLogFilter{path, statusIs(413)}},
		}},
		BodyFormatOverride: jsonErrorFormat(msg, "invalid_request_error", "request_too_large"),
	}
}

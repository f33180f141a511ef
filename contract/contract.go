// Package contract holds every name the Envoy configuration (package xds)
// and the ext_proc server (package extproc) must agree on: the headers
// ext_proc sets and Envoy routes or logs by, the dynamic metadata Envoy
// copies into responses and access logs, the filter, cluster and attribute
// names. Both sides import it, so neither depends on the other and a name
// changes in one place. Names of Envoy's own extensions come from
// go-control-plane's pkg/wellknown where it has them; the few it lacks are
// spelled here once.
package contract

import (
	"strings"

	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
)

// Headers ext_proc sets on a request and Envoy reads (routes, response
// headers, logs).
const (
	// HeaderPrefix starts every Streamgate header; a client's headers with
	// it are removed before routing.
	HeaderPrefix = "x-streamgate-"
	// BackendHeader names the cluster a request goes to; each backend
	// route matches it.
	BackendHeader = HeaderPrefix + "backend"
	// VersionHeader carries the chosen model version (request) and
	// reports it to the client (response, copied by the route). A client
	// may send it to pin a version where the model allows.
	VersionHeader = HeaderPrefix + "model-version"
	// ModelHeader is the gRPC request metadata naming the public model;
	// Envoy logs it to the gRPC access log. gRPC streams are routed at
	// request-headers time, before any message arrives, so the model comes
	// from metadata, never from a message's model_name.
	ModelHeader = HeaderPrefix + "model"
	// PriorityHeader is a client's request priority (critical, standard,
	// sheddable), read only from tenants allowed to set it (priority_header)
	// and always removed before the request goes upstream.
	PriorityHeader = HeaderPrefix + "priority"
	// RequestIDHeader is the request id Envoy generates (and ext_proc
	// reads for logs and traces).
	RequestIDHeader = "x-request-id"
	// PerTryTimeoutHeader is Envoy's per-try timeout header: ext_proc sets
	// it on a streaming request whose backend has a first_byte_timeout;
	// the router reads it (and removes it) to bound each try's wait for
	// the response headers.
	PerTryTimeoutHeader = "x-envoy-upstream-rq-per-try-timeout-ms"
)

// The OpenAI-style x-ratelimit-* response headers. ext_proc puts their
// values in the request's dynamic metadata (MetadataNamespace, key = header
// name) when it admits a limited request; the route copies them onto the
// response.
const (
	RateLimitLimitRequests     = "x-ratelimit-limit-requests"
	RateLimitRemainingRequests = "x-ratelimit-remaining-requests"
	RateLimitResetRequests     = "x-ratelimit-reset-requests"
	RateLimitLimitTokens       = "x-ratelimit-limit-tokens"
	RateLimitRemainingTokens   = "x-ratelimit-remaining-tokens"
	RateLimitResetTokens       = "x-ratelimit-reset-tokens"
)

// RateLimitHeaders lists the x-ratelimit-* headers in the order they are
// reported. Callers must not modify it.
var RateLimitHeaders = []string{
	RateLimitLimitRequests, RateLimitRemainingRequests, RateLimitResetRequests,
	RateLimitLimitTokens, RateLimitRemainingTokens, RateLimitResetTokens,
}

// The spend budget response headers: the budget window with the least
// remaining after this request's reservation (extproc/budget). Like the
// x-ratelimit-* values, ext_proc puts them in the request's dynamic
// metadata (MetadataNamespace, key = header name) and the route copies
// them onto the response; refusals carry them directly.
const (
	// BudgetLimit is the window's budget, in the currency of the prices.
	BudgetLimit = HeaderPrefix + "budget-limit"
	// BudgetRemaining is what is left of it, reservations in flight taken.
	BudgetRemaining = HeaderPrefix + "budget-remaining"
	// BudgetReset is the time until the window frees room, e.g. "6h0m0s".
	BudgetReset = HeaderPrefix + "budget-reset"
	// BudgetWindow names the window: day, month or a rolling length,
	// prefixed "key " for an API key's budget.
	BudgetWindow = HeaderPrefix + "budget-window"
	// ShouldRetryHeader ("false") tells the OpenAI and Anthropic SDKs not
	// to retry a refusal that no retry within a minute can cure (a spent
	// budget whose window resets later).
	ShouldRetryHeader = "x-should-retry"
)

// BudgetHeaders lists the budget headers in the order they are reported.
// Callers must not modify it.
var BudgetHeaders = []string{BudgetLimit, BudgetRemaining, BudgetReset, BudgetWindow}

// Dynamic metadata namespaces ext_proc writes and Envoy forwards or logs.
const (
	// MetadataNamespace holds what ext_proc reports per request (the
	// Meta* keys and the x-ratelimit-* values).
	MetadataNamespace = "streamgate"
	// ReportNamespace holds only ReportKey, the key naming a request whose
	// usage Envoy reads; the usage report (UsageReportLog) carries it back.
	ReportNamespace = "streamgate.report"
	ReportKey       = "key"
	// EnvoyUsageNamespace is where Envoy's AI protocol manager publishes a
	// response's token usage (typed: envoy.data.ai.v3.TokenUsage).
	EnvoyUsageNamespace = "envoy.ai.token_usage"
)

// The usage report: the access log entry Envoy sends Streamgate's access
// log service when a request whose usage Envoy reads ends.
const (
	// UsageReportLog is the report's log name.
	UsageReportLog = "streamgate_usage"
	// ReportTTFTTag is the report's custom tag holding the microseconds
	// from the request's first byte to the backend's first body byte.
	ReportTTFTTag = "ttft_us"
)

// Keys under MetadataNamespace, read by the access log.
const (
	MetaEndpoint      = "endpoint"
	MetaTenant        = "tenant"
	MetaModel         = "model"
	MetaStream        = "stream"
	MetaUpstreamModel = "upstream_model"
	MetaBackend       = "backend"
	MetaVersion       = "version"
	MetaTraceID       = "trace_id"
	MetaLimitDecision = "limit_decision"
	MetaQueueWaitMS   = "queue_wait_ms"
	MetaInputTokens   = "input_tokens"
	MetaOutputTokens  = "output_tokens"
	MetaCostUSD       = "cost_usd"
	MetaTTFTMS        = "ttft_ms"
	MetaResponseModel = "response_model"
	// MetaImages is how many images an Images API response carried.
	MetaImages = "images"
	// MetaPriceInput and MetaPriceOutput are the model's USD prices per
	// million input and output tokens, for the access log's cost where
	// Envoy reads usage.
	MetaPriceInput  = "price_input_per_million"
	MetaPriceOutput = "price_output_per_million"
	// MetaStrip (true) asks StripUsageFilter to remove the usage the
	// gateway asked for from the response.
	MetaStrip = "strip_usage"
)

// Filter names. Envoy's own filters not in go-control-plane's wellknown
// are spelled here.
const (
	// ExtProcFilter is Envoy's ext_proc filter; Envoy files the attributes
	// it sends to ext_proc under this name too.
	ExtProcFilter = "envoy.filters.http.ext_proc"
	// UsageFilter is Envoy's AI protocol manager, reading each response's
	// token usage as it passes (EnvoyUsageNamespace).
	UsageFilter = "envoy.filters.http.ai_protocol_manager"
	// StripUsageFilter is the Lua filter that removes, on the response's
	// way to the client, the usage chunk the gateway asked the backend for
	// (MetaStrip).
	StripUsageFilter = "streamgate.strip_usage"
	// GRPCStatsFilterState is the filter state the grpc_stats filter
	// writes and the gRPC access log sends to ext_proc's access log
	// service (message counts per call).
	GRPCStatsFilterState = wellknown.HTTPGRPCStats
)

// ResponseCodeAttribute is the attribute carrying the response status,
// requested by the ext_proc filter and read by ext_proc when it skips the
// response headers phase.
const ResponseCodeAttribute = "response.code"

// Envoy attributes of the verified client certificate, sent with the
// request headers where clients may present one (gateway.tls.client_ca_file).
const (
	PeerURISANAttribute  = "connection.uri_san_peer_certificate"
	PeerDNSSANAttribute  = "connection.dns_san_peer_certificate"
	PeerSubjectAttribute = "connection.subject_peer_certificate"
)

// Cluster names.
const (
	// ExtProcCluster is the cluster Envoy reaches the ext_proc server by.
	ExtProcCluster = "streamgate_extproc"
	// UnroutedCluster is the endpoint-less cluster of the catch-all route.
	UnroutedCluster = "streamgate_unrouted"
	// FailoverPrefix starts the name of every failover (aggregate) cluster.
	FailoverPrefix = "streamgate_failover_"
)

// FailoverChain is the ordered list of backends a model version's
// requests try: the version's own backend, then the model's fallbacks
// (each once).
func FailoverChain(backend string, fallbacks []string) []string {
	chain := []string{backend}
	for _, fb := range fallbacks {
		if fb != backend {
			chain = append(chain, fb)
		}
	}
	return chain
}

// FailoverCluster names the aggregate cluster for a chain. Chains of one
// backend need no failover cluster and get the backend itself.
func FailoverCluster(chain []string) string {
	if len(chain) == 1 {
		return chain[0]
	}
	return FailoverPrefix + strings.Join(chain, "+")
}

package extproc

import (
	"strconv"

	alsdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/telemetry"
)

// serviceMetrics count service requests per service, operation and tenant:
// the ones a backend answered from Envoy's service log
// (contract.ServiceLog, written when a request ends), the ones Streamgate
// refused when it refuses them.
type serviceMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bytes    *prometheus.CounterVec
}

// serviceBuckets bound service request durations: a millisecond to a minute.
var serviceBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60}

func newServiceMetrics(reg prometheus.Registerer) *serviceMetrics {
	labels := []string{"service", "operation", "tenant"}
	m := &serviceMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamgate_service_requests_total",
			Help: "Requests to services (docs/services.md), by service, operation (the matched rule's name, empty when none matched), tenant and HTTP status (Streamgate's refusals included); counted when a request ends.",
		}, append(labels, "status")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "streamgate_service_request_duration_seconds",
			Help:    "Duration of service requests a backend answered, from the request's first byte to the response's last, by service, operation and tenant.",
			Buckets: serviceBuckets,
		}, labels),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamgate_service_bytes_total",
			Help: "Body bytes of service requests a backend answered, by service, operation, tenant and direction (request: client to service, response: service to client).",
		}, append(labels, "direction")),
	}
	reg.MustRegister(m.requests, m.duration, m.bytes)
	return m
}

// serviceLabels are an entry's service, operation and tenant labels,
// bounded by the services table of the current config (names it does not
// know are "other"); ok is false when the entry names no service.
func (a *AccessLog) serviceLabels(e *alsdatav3.HTTPAccessLogEntry) (svc, op, tenant string, ok bool) {
	md := e.GetCommonProperties().GetMetadata().GetFilterMetadata()[contract.MetadataNamespace].GetFields()
	svc = md[contract.MetaService].GetStringValue()
	if svc == "" {
		return "", "", "", false
	}
	op, tenant = md[contract.MetaOperation].GetStringValue(), md[contract.MetaTenant].GetStringValue()
	var t *serviceTable
	if a.routes != nil {
		if r := a.routes(); r != nil {
			t = r.services
		}
	}
	e2 := t.byName(svc)
	if e2 == nil {
		return "other", "other", "other", true
	}
	if !e2.opNames[op] {
		op = "other"
	}
	return svc, op, t.tenantLabel(tenant), true
}

// recordService counts one finished service request and publishes its
// usage event (tenant, service, operation, status, duration, bytes).
func (a *AccessLog) recordService(e *alsdatav3.HTTPAccessLogEntry) {
	svc, op, tenant, ok := a.serviceLabels(e)
	if !ok {
		return
	}
	in, out := e.GetRequest().GetRequestBodyBytes(), e.GetResponse().GetResponseBodyBytes()
	if in > maxCallBytes || out > maxCallBytes {
		a.log.Warn("access log entry dropped: implausible counts", "service", svc, "request_bytes", in, "response_bytes", out)
		return
	}
	cp := e.GetCommonProperties()
	code := e.GetResponse().GetResponseCode().GetValue()
	if a.metrics != nil && a.metrics.svc != nil {
		m := a.metrics.svc
		m.requests.WithLabelValues(svc, op, tenant, strconv.FormatUint(uint64(code), 10)).Inc()
		if d := cp.GetDuration(); d != nil {
			m.duration.WithLabelValues(svc, op, tenant).Observe(d.AsDuration().Seconds())
		}
		m.bytes.WithLabelValues(svc, op, tenant, "request").Add(float64(in))
		m.bytes.WithLabelValues(svc, op, tenant, "response").Add(float64(out))
	}
	if a.sink == nil {
		return
	}
	md := cp.GetMetadata().GetFilterMetadata()[contract.MetadataNamespace].GetFields()
	a.sink().Publish(telemetry.Event{
		RequestID: e.GetRequest().GetRequestId(), Time: cp.GetStartTime().AsTime().UTC(),
		Tenant: md[contract.MetaTenant].GetStringValue(), Endpoint: md[contract.MetaEndpoint].GetStringValue(),
		Backend: cp.GetUpstreamCluster(), Status: int(code), DurationMs: float64(cp.GetDuration().AsDuration().Microseconds()) / 1000,
		Service: svc, Operation: op, RequestBytes: in, ResponseBytes: out,
	})
}

// observeServiceRefusal counts a service request Streamgate refused: Envoy
// drops the metadata of a refusal, so the service log never sees it.
func (p *processor) observeServiceRefusal() {
	e := p.svc.entry
	if e == nil || !p.answered || p.svc.admitted {
		return
	}
	op := ""
	if p.svc.op != nil {
		op = p.svc.op.name
	}
	if p.metrics != nil && p.metrics.svc != nil {
		p.metrics.svc.requests.WithLabelValues(e.name, op, p.routes.services.tenantLabel(p.Tenant), strconv.Itoa(p.status)).Inc()
	}
	p.obs.sink.Publish(telemetry.Event{
		RequestID: p.requestID, Time: p.now().UTC(), Tenant: p.Tenant, Endpoint: e.prefix, Backend: e.backend,
		Status: p.status, Error: p.obs.errorType, Service: e.name, Operation: op,
	})
}

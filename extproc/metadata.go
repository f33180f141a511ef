package extproc

import (
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/streamgate/streamgate/contract"
)

// requestMetadata is what Streamgate tells Envoy about a request: who sent
// it, what it asked for and where it went, or why it was refused. Never a
// credential or prompt text. Cost: one small Struct per request, its
// values allocated together (metaFields).
func (p *processor) requestMetadata() *structpb.Struct {
	traceID := p.obs.span.TraceID()
	// Other fields: stream, queue wait and, when picked, pickMetadata's
	// two. (A hint over 8 costs a map of groups instead of one group.)
	other := 2
	if len(p.pick.res.Endpoints) > 0 {
		other += 2
	}
	if p.reportKey != "" {
		other += 3 // strip and the two prices
	}
	m := newMetaFields(p.requestFields(traceID != ""), other)
	m.str(contract.MetaEndpoint, pathOnly(p.path))
	if p.Tenant != "" {
		m.str(contract.MetaTenant, p.Tenant)
	}
	if p.info.Model != "" {
		model := p.info.Model
		if p.route == nil { // refused before routing: configured names only, as in metrics
			model = p.routes.labelModel(model)
		}
		m.str(contract.MetaModel, model)
		m.f[contract.MetaStream] = structpb.NewBoolValue(p.info.Stream)
	}
	if r := p.route; r != nil {
		m.str(contract.MetaUpstreamModel, r.UpstreamModel)
		m.str(contract.MetaBackend, r.Backend)
		m.str(contract.MetaVersion, r.Version)
	}
	if traceID != "" {
		m.str(contract.MetaTraceID, traceID)
	}
	p.rateValues(m.str)
	if p.obs.decision != "" {
		m.str(contract.MetaLimitDecision, p.obs.decision)
		m.f[contract.MetaQueueWaitMS] = structpb.NewNumberValue(float64(p.obs.queueWait.Microseconds()) / 1000)
	}
	md := &structpb.Struct{Fields: make(map[string]*structpb.Value, 3)}
	md.Fields[contract.MetadataNamespace] = structpb.NewStructValue(&structpb.Struct{Fields: m.f})
	p.pickMetadata(md, m.f)
	if p.reportKey != "" {
		md.Fields[contract.ReportNamespace] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			contract.ReportKey: structpb.NewStringValue(p.reportKey),
		}})
		if p.plan.strip {
			m.f[contract.MetaStrip] = structpb.NewBoolValue(true)
		}
		if set, r := p.obs.set, p.route; set != nil && r != nil {
			if pr, ok := set.prices[r.Model]; ok {
				m.f[contract.MetaPriceInput] = structpb.NewNumberValue(pr.InputPerMillion)
				m.f[contract.MetaPriceOutput] = structpb.NewNumberValue(pr.OutputPerMillion)
			}
		}
	}
	return md
}

// requestFields is how many string fields requestMetadata sets: endpoint,
// model, upstream model, backend and version; the tenant when known, the
// trace id when traced; six x-ratelimit-* values with limits; the limit
// decision once admitted.
func (p *processor) requestFields(traced bool) int {
	n := 5
	if p.Tenant != "" {
		n++
	}
	if traced {
		n++
	}
	if p.lim != nil {
		n += 6 + p.budgetFields()
	}
	if p.obs.decision != "" {
		n++
	}
	return n
}

// metaFields builds the fields of a Struct with string values in three
// allocations (the map, the values, their kinds) instead of two per value.
type metaFields struct {
	f    map[string]*structpb.Value
	vals []structpb.Value
	strs []structpb.Value_StringValue
}

// newMetaFields has room for n string fields, more allocated one by one,
// and for extra fields of other kinds in the map.
func newMetaFields(n, extra int) *metaFields {
	return &metaFields{f: make(map[string]*structpb.Value, n+extra), vals: make([]structpb.Value, 0, n), strs: make([]structpb.Value_StringValue, 0, n)}
}

// str sets field k to the string v.
func (m *metaFields) str(k, v string) {
	if len(m.vals) == cap(m.vals) {
		m.f[k] = structpb.NewStringValue(v)
		return
	}
	m.strs = append(m.strs, structpb.Value_StringValue{StringValue: v})
	m.vals = m.vals[:len(m.vals)+1]
	val := &m.vals[len(m.vals)-1]
	val.Kind = &m.strs[len(m.strs)-1]
	m.f[k] = val
}

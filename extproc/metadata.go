package extproc

import (
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/streamgate/streamgate/contract"
)

// requestMetadata is what Streamgate tells Envoy about a request: who sent
// it, what it asked for and where it went, or why it was refused. Never a
// credential or prompt text. Cost: one small Struct per request.
func (p *processor) requestMetadata() *structpb.Struct {
	f := map[string]*structpb.Value{
		contract.MetaEndpoint: structpb.NewStringValue(pathOnly(p.path)),
	}
	if p.Tenant != "" {
		f[contract.MetaTenant] = structpb.NewStringValue(p.Tenant)
	}
	if p.info.Model != "" {
		f[contract.MetaModel] = structpb.NewStringValue(p.info.Model)
		f[contract.MetaStream] = structpb.NewBoolValue(p.info.Stream)
	}
	if r := p.route; r != nil {
		f[contract.MetaUpstreamModel] = structpb.NewStringValue(r.UpstreamModel)
		f[contract.MetaBackend] = structpb.NewStringValue(r.Backend)
		f[contract.MetaVersion] = structpb.NewStringValue(r.Version)
	}
	if id := p.obs.span.TraceID(); id != "" {
		f[contract.MetaTraceID] = structpb.NewStringValue(id)
	}
	p.rateMetadata(f)
	if p.obs.decision != "" {
		f[contract.MetaLimitDecision] = structpb.NewStringValue(p.obs.decision)
		f[contract.MetaQueueWaitMS] = structpb.NewNumberValue(float64(p.obs.queueWait.Microseconds()) / 1000)
	}
	md := &structpb.Struct{Fields: map[string]*structpb.Value{
		contract.MetadataNamespace: structpb.NewStructValue(&structpb.Struct{Fields: f}),
	}}
	p.pickMetadata(md, f)
	if p.reportKey != "" {
		md.Fields[contract.ReportNamespace] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			contract.ReportKey: structpb.NewStringValue(p.reportKey),
		}})
		if p.plan.strip {
			f[contract.MetaStrip] = structpb.NewBoolValue(true)
		}
		if set, r := p.obs.set, p.route; set != nil && r != nil {
			if pr, ok := set.prices[r.Model]; ok {
				f[contract.MetaPriceInput] = structpb.NewNumberValue(pr.InputPerMillion)
				f[contract.MetaPriceOutput] = structpb.NewNumberValue(pr.OutputPerMillion)
			}
		}
	}
	return md
}

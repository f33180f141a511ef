package extproc

import (
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/streamgate/streamgate/xds"
)

// requestMetadata is what Streamgate tells Envoy about a request: who sent
// it, what it asked for and where it went, or why it was refused. Never a
// credential or prompt text. Cost: one small Struct per request.
func (p *processor) requestMetadata() *structpb.Struct {
	f := map[string]*structpb.Value{
		"endpoint": structpb.NewStringValue(pathOnly(p.path)),
	}
	if p.Tenant != "" {
		f["tenant"] = structpb.NewStringValue(p.Tenant)
	}
	if p.info.Model != "" {
		f["model"] = structpb.NewStringValue(p.info.Model)
		f["stream"] = structpb.NewBoolValue(p.info.Stream)
	}
	if r := p.route; r != nil {
		f["upstream_model"] = structpb.NewStringValue(r.UpstreamModel)
		f["backend"] = structpb.NewStringValue(r.Backend)
		f["version"] = structpb.NewStringValue(r.Version)
	}
	if id := p.obs.span.TraceID(); id != "" {
		f["trace_id"] = structpb.NewStringValue(id)
	}
	p.rateMetadata(f)
	if p.obs.decision != "" {
		f["limit_decision"] = structpb.NewStringValue(p.obs.decision)
		f["queue_wait_ms"] = structpb.NewNumberValue(float64(p.obs.queueWait.Microseconds()) / 1000)
	}
	md := &structpb.Struct{Fields: map[string]*structpb.Value{
		xds.MetadataNamespace: structpb.NewStructValue(&structpb.Struct{Fields: f}),
	}}
	if p.tapKey != "" {
		md.Fields[xds.TapNamespace] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			xds.TapMetadataKey: structpb.NewStringValue(p.tapKey),
		}})
	}
	return md
}

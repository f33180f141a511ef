package extproc

import (
	"net/netip"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/streamgate/streamgate/extproc/picking"
)

// eppRequest reads what a pick uses from a buffered request body, in one
// pass over its top-level keys and without validating it (the endpoint
// picker decides no policy, and the model server answers a bad body):
//   - Prompt: the raw JSON of "messages" (chat, Anthropic messages) or
//     "prompt" (completions), a sub-slice of body. Its bytes keep the order
//     the server's prefix cache sees (system prompt first, earlier turns
//     before later ones), so a shared prefix of conversations is a shared
//     prefix of these bytes.
//   - LoRA: the model field, which names the adapter on vLLM-style servers;
//     for a base model no endpoint reports it loaded, so the LoRA scorer
//     ranks every endpoint alike.
//
// A body that is not a JSON object, or lacks these fields, yields what it
// has (nothing: the pick uses load alone). Cost: one scan of the top-level
// keys, stopping once both fields are seen; allocates only the model name.
func eppRequest(body []byte) picking.Request {
	var r picking.Request
	if len(body) == 0 {
		return r
	}
	root := gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body)))
	if !root.IsObject() {
		return r
	}
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			if v.Type == gjson.String && r.LoRA == "" {
				r.LoRA = strings.Clone(v.Str)
			}
		case "messages", "prompt":
			if r.Prompt == nil && complete(v) && v.Index >= 0 && v.Index+len(v.Raw) <= len(body) {
				r.Prompt = body[v.Index : v.Index+len(v.Raw) : v.Index+len(v.Raw)]
			}
		}
		return r.LoRA == "" || r.Prompt == nil
	})
	return r
}

// complete reports whether v is a string or an array whose closing bracket
// was seen (gjson hands out a truncated array as far as it goes).
func complete(v gjson.Result) bool {
	return v.Type == gjson.String || v.IsArray() && strings.HasSuffix(v.Raw, "]")
}

// subset returns the endpoints of ix named by the subset hint v, in the
// backend's order: a list of "IP:port" strings (a string is read as a
// comma-separated list). Entries that are not the backend's endpoints are
// not eligible; nil when none is.
func (ix *eppIndex) subset(v *structpb.Value) []*picking.Endpoint {
	want := make(map[*picking.Endpoint]bool)
	add := func(s string) {
		for a := range strings.SplitSeq(s, ",") {
			if ep := ix.lookup(strings.TrimSpace(a)); ep != nil {
				want[ep] = true
			}
		}
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_ListValue:
		for _, x := range k.ListValue.GetValues() {
			add(x.GetStringValue())
		}
	case *structpb.Value_StringValue:
		add(k.StringValue)
	}
	if len(want) == 0 {
		return nil
	}
	out := make([]*picking.Endpoint, 0, len(want))
	for _, ep := range ix.b.Endpoints() {
		if want[ep] {
			out = append(out, ep)
		}
	}
	return out
}

// lookup returns the backend's endpoint at addr, in any spelling of the
// same IP:port; nil when there is none.
func (ix *eppIndex) lookup(addr string) *picking.Endpoint {
	if ep := ix.byAddr[addr]; ep != nil {
		return ep
	}
	return ix.byAddr[canonicalAddr(addr)]
}

// canonicalAddr is addr's netip form ("[::1]:80", "10.0.0.1:80"), or addr
// itself when it is not IP:port.
func canonicalAddr(addr string) string {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap.String()
	}
	return addr
}

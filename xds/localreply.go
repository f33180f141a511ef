package xds

import (
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// MessagesPath is the Anthropic Messages API path; replies Envoy makes
// itself on it get Anthropic's error shape.
const MessagesPath = "/v1/messages"

// messagesLocalReplies returns, for each OpenAI-shaped local reply mapper,
// one placed before it that matches the same replies on /v1/messages and
// writes Anthropic's error shape ({"type":"error","error":{type,message}})
// with the given error types (one per mapper, in order).
func messagesLocalReplies(openai []*hcmv3.ResponseMapper, messages []string, anthropicTypes []string) []*hcmv3.ResponseMapper {
	onMessages := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_HeaderFilter{
		HeaderFilter: &accesslogv3.HeaderFilter{Header: &routev3.HeaderMatcher{
			Name: ":path",
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: MessagesPath},
			}},
		}},
	}}
	out := make([]*hcmv3.ResponseMapper, 0, len(openai))
	for i, m := range openai {
		out = append(out, &hcmv3.ResponseMapper{
			Filter: &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{
				AndFilter: &accesslogv3.AndFilter{Filters: []*accesslogv3.AccessLogFilter{onMessages, m.GetFilter()}},
			}},
			BodyFormatOverride: anthropicErrorFormat(messages[i], anthropicTypes[i]),
		})
	}
	return out
}

func anthropicErrorFormat(message, typ string) *corev3.SubstitutionFormatString {
	s, _ := structpb.NewStruct(map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": message}})
	return &corev3.SubstitutionFormatString{
		Format:      &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: s},
		ContentType: "application/json",
	}
}

package extproc

import (
	"fmt"
	"net/url"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/streamgate/streamgate/extproc/credential"
)

// azurePath maps an OpenAI API path (/v1/chat/completions, a query
// dropped) to route's Azure OpenAI deployment path: the deployment is the
// upstream model, the api-version the backend's.
func azurePath(openAIPath string, route *Route) string {
	op, _ := strings.CutPrefix(pathOnly(openAIPath), "/v1/")
	return "/openai/deployments/" + url.PathEscape(route.UpstreamModel) + "/" + op + "?api-version=" + url.QueryEscape(route.AzureAPIVersion)
}

// signUpstream appends the headers route's backend signer (if any) makes
// for the final path and body: SigV4 for Bedrock, an Entra ID bearer for
// Azure OpenAI. A signer that cannot get its credential refuses the
// request (502) without calling the backend.
func (p *processor) signUpstream(set []*corev3.HeaderValueOption, route *Route, path string, body []byte) ([]*corev3.HeaderValueOption, *extprocsvcv3.ProcessingResponse) {
	s, ok := p.auth.Signer(route.Backend)
	if !ok {
		return set, nil
	}
	signed, err := s.Sign(p.ctx, path, body)
	if err != nil {
		// The log gets the cause (never a secret); the client the vetted message.
		return nil, p.fail(fmt.Errorf("%w: %v", reject(credential.ErrUnavailable, "The gateway could not obtain credentials for the model backend."), err))
	}
	for _, h := range signed {
		set = append(set, header(h[0], h[1]))
	}
	return set, nil
}

package extproc

import (
	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc/translate"
)

// wireProtocol is the protocol requests to a backend of protocol p are
// made in: p, except for Claude on Vertex AI (an anthropic backend with a
// vertex block, vertexProject set), whose Messages API comes in Vertex's
// envelope and is therefore translated even for Messages clients.
func wireProtocol(p config.Protocol, vertexProject string) translate.Protocol {
	if p == config.ProtocolAnthropic && vertexProject != "" {
		return translate.ProtocolAnthropicVertex
	}
	return translate.Protocol(p)
}

// wire is the protocol route's requests are made in.
func (r *Route) wire() translate.Protocol { return wireProtocol(r.Protocol, r.VertexProject) }

// wire is the protocol requests to h are made in.
func (h *crossHop) wire() translate.Protocol { return wireProtocol(h.protocol, h.vertexProject) }

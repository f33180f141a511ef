package auth

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc/credential"
)

// UpstreamHeader is a header the gateway sets on every request it sends to
// one backend: the backend's own credential, never the client's.
type UpstreamHeader struct {
	Name  string
	Value string
}

// loadUpstream reads every backend credential from its env var or file.
func loadUpstream(backends []config.Backend) (map[string]UpstreamHeader, error) {
	out := map[string]UpstreamHeader{}
	for _, b := range backends {
		c := b.Credential
		if c == nil {
			continue
		}
		var secret string
		switch {
		case c.Env != "":
			secret = os.Getenv(c.Env)
			if secret == "" {
				return nil, fmt.Errorf("cannot read credential of backend %q: environment variable %s is empty or unset", b.Name, c.Env)
			}
		default:
			data, err := os.ReadFile(c.File)
			if err != nil {
				return nil, fmt.Errorf("cannot read credential of backend %q: %w", b.Name, err)
			}
			secret = strings.TrimSpace(string(data))
		}
		if secret == "" || !visibleASCII(strings.ReplaceAll(secret, " ", "!")) {
			return nil, fmt.Errorf("cannot use credential of backend %q: it is empty or holds control characters", b.Name)
		}
		h := UpstreamHeader{Name: c.Header, Value: secret}
		if c.Header == HeaderAuthorization {
			h.Value = "Bearer " + secret
		}
		out[b.Name] = h
	}
	return out, nil
}

// Upstream returns the credential header for a backend, if it has one.
func (a *Authenticator) Upstream(backend string) (UpstreamHeader, bool) {
	if a == nil {
		return UpstreamHeader{}, false
	}
	h, ok := a.upstream[backend]
	return h, ok
}

// loadSigners builds the signer of every backend whose requests are signed
// per request (bedrock: SigV4; Azure OpenAI with Entra ID and Vertex AI:
// a bearer token)
// and starts fetching their AWS credentials.
func loadSigners(ctx context.Context, backends []config.Backend, log *slog.Logger) (map[string]credential.Signer, error) {
	out := map[string]credential.Signer{}
	for _, b := range backends {
		if b.Azure != nil && b.Azure.Entra != nil {
			s, err := credential.NewEntra(ctx, b.Azure.Entra)
			if err != nil {
				return nil, fmt.Errorf("cannot set up Entra ID tokens for backend %q: %w", b.Name, err)
			}
			out[b.Name] = s
			continue
		}
		if (b.Protocol == config.ProtocolGemini || b.Protocol == config.ProtocolAnthropic) && b.Vertex != nil {
			s, err := credential.NewVertex(ctx, b.Vertex)
			if err != nil {
				return nil, fmt.Errorf("cannot set up Google OAuth2 tokens for backend %q: %w", b.Name, err)
			}
			out[b.Name] = s
			continue
		}
		if b.Protocol != config.ProtocolBedrock || b.AWS == nil {
			continue
		}
		s, err := credential.NewAWS(ctx, b.AWS)
		if err != nil {
			return nil, fmt.Errorf("cannot set up AWS signing for backend %q: %w", b.Name, err)
		}
		s.Warm(ctx, log, b.Name)
		out[b.Name] = s
	}
	return out, nil
}

// Signer returns the per-request signer of a backend, if it has one.
func (a *Authenticator) Signer(backend string) (credential.Signer, bool) {
	if a == nil {
		return nil, false
	}
	s, ok := a.signers[backend]
	return s, ok
}

package config

// ProtocolGemini is Google's generateContent API: the Gemini API
// (/v1beta/models/{model}:generateContent, an API key in x-goog-api-key)
// or, with a vertex block, Vertex AI (the same method under
// /v1/projects/{project}/locations/{location}/publishers/google/models/,
// OAuth2 bearer tokens).
const ProtocolGemini Protocol = "gemini"

// GeminiKeyHeader is the header the Gemini API takes its API key in.
const GeminiKeyHeader = "x-goog-api-key"

// VertexScope is the OAuth2 scope of Vertex AI bearer tokens.
const VertexScope = "https://www.googleapis.com/auth/cloud-platform"

// Vertex makes a gemini backend a Vertex AI endpoint, and an anthropic
// backend Claude on Vertex AI: requests go to the publisher model paths
// of the project and location (publishers/google for Gemini,
// publishers/anthropic for Claude), with bearer tokens
// of Google's Application Default Credentials (or a service account key
// file), fetched by golang.org/x/oauth2/google, cached and refreshed before
// they expire.
type Vertex struct {
	// Project is the Google Cloud project id (required).
	Project string `yaml:"project"`
	// Location is the region of the endpoint, e.g. us-central1 or global
	// (required).
	Location string `yaml:"location"`
	// CredentialsFile is a service account key file (JSON); its token_uri
	// is the token endpoint. Empty means Application Default Credentials:
	// GOOGLE_APPLICATION_CREDENTIALS, gcloud's file, then the metadata
	// server.
	CredentialsFile string `yaml:"credentials_file"`
}

// validateGemini checks backend b's gemini and vertex settings at p.
func (v *validator) validateGemini(p string, b *Backend) {
	if b.Vertex != nil && b.Protocol != ProtocolGemini && b.Protocol != ProtocolAnthropic {
		v.at(p+".vertex", "backend %q: vertex applies to the gemini and anthropic (Claude on Vertex AI) protocols only, not %s", b.Name, b.Protocol)
		return
	}
	if b.Protocol != ProtocolGemini && b.Vertex == nil {
		return
	}
	switch {
	case b.Protocol == ProtocolGemini && b.Vertex == nil && (b.Credential == nil || b.Credential.Header != GeminiKeyHeader):
		v.at(p, "backend %q: protocol gemini needs credential {header: x-goog-api-key} (Gemini API) or a vertex block (Vertex AI)", b.Name)
	case b.Vertex != nil && b.Credential != nil:
		v.at(p+".credential", "backend %q: a Vertex AI backend is authorized with Google OAuth2 tokens (vertex), not a static credential", b.Name)
	case b.Vertex != nil && (b.Vertex.Project == "" || b.Vertex.Location == ""):
		v.at(p+".vertex", "backend %q: vertex needs project and location", b.Name)
	}
}

// ClaudeOnVertex reports whether b is Claude on Vertex AI: an anthropic
// backend with a vertex block, whose Messages API comes in Vertex's
// envelope.
func (b *Backend) ClaudeOnVertex() bool { return b.Protocol == ProtocolAnthropic && b.Vertex != nil }

// sameVertex reports whether two backends take the same Vertex AI
// settings: the path and token are chosen once, for the version's backend.
func sameVertex(a, b *Backend) bool {
	if a.Vertex == nil || b.Vertex == nil {
		return a.Vertex == nil && b.Vertex == nil
	}
	return *a.Vertex == *b.Vertex
}

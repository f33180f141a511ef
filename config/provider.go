package config

import (
	"net"
	"slices"
)

// ProtocolBedrock is the AWS Bedrock Runtime Converse API
// (/model/{modelId}/converse and /converse-stream); requests are signed
// with SigV4 (the backend's aws block).
const ProtocolBedrock Protocol = "bedrock"

// AWS says how the gateway signs the requests it sends to an AWS backend
// (protocol bedrock). Credentials come from the AWS SDK's default chain:
// the AWS_* environment variables, the shared config and credentials files
// (profile), web identity, and the ECS/EKS container or EC2 instance
// metadata endpoints; the SDK caches and refreshes them.
type AWS struct {
	// Region is the AWS region the requests are signed for, e.g. us-east-1
	// (required).
	Region string `yaml:"region"`
	// Host is the host name requests are signed for and sent with, since
	// the signature covers it; default bedrock-runtime.REGION.amazonaws.com.
	// Set it for a VPC endpoint, or a test server.
	Host string `yaml:"host"`
	// Profile selects a profile of the shared config files; empty means
	// AWS_PROFILE, else the environment credentials, else "default".
	Profile string `yaml:"profile"`
	// ConfigFiles replace the shared config files the SDK reads; empty
	// means the SDK's own choice: AWS_CONFIG_FILE, else ~/.aws/config.
	ConfigFiles []string `yaml:"config_files"`
	// CredentialsFiles replace the shared credentials files the SDK reads;
	// empty means AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials.
	CredentialsFiles []string `yaml:"credentials_files"`
	// API is the Bedrock API requests go to: converse (the default; any
	// model, translated to Converse / ConverseStream) or invoke (Claude
	// models only: Anthropic's Messages body through InvokeModel /
	// InvokeModelWithResponseStream, with Claude's own features).
	API string `yaml:"api"`
}

// Bedrock APIs (AWS.API).
const (
	BedrockConverse = "converse"
	BedrockInvoke   = "invoke"
)

// SigningHost is the host requests to the backend are signed for and sent
// with.
func (a *AWS) SigningHost() string {
	if a.Host != "" {
		return a.Host
	}
	return "bedrock-runtime." + a.Region + ".amazonaws.com"
}

// Invoke reports whether requests go to Claude's InvokeModel API (api:
// invoke) rather than Converse; a nil AWS: no.
func (a *AWS) Invoke() bool { return a != nil && a.API == BedrockInvoke }

// UpstreamHost is the Host header Envoy must send to b: the signed host
// of a bedrock backend; the server name of a TLS backend named by DNS
// (tls.sni, else the first endpoint's host), which hosted APIs such as
// api.openai.com route on; empty (the client's Host) for the others.
func (b *Backend) UpstreamHost() string {
	if b.AWS != nil && b.Protocol == ProtocolBedrock {
		return b.AWS.SigningHost()
	}
	if b.TLS != nil {
		if name := b.ServerName(); name != "" && net.ParseIP(name) == nil {
			return name
		}
	}
	return ""
}

// OpenAI holds the settings of the OpenAI platform (api.openai.com) an
// openai backend sends with every request.
type OpenAI struct {
	// Organization is sent as the OpenAI-Organization header: the
	// organization the requests are billed to.
	Organization string `yaml:"organization"`
	// Project is sent as the OpenAI-Project header.
	Project string `yaml:"project"`
}

// UpstreamHeaders are the fixed headers Envoy adds to every request to b,
// as name/value pairs in a stable order.
func (b *Backend) UpstreamHeaders() [][2]string {
	var out [][2]string
	if o := b.OpenAI; o != nil {
		if o.Organization != "" {
			out = append(out, [2]string{"openai-organization", o.Organization})
		}
		if o.Project != "" {
			out = append(out, [2]string{"openai-project", o.Project})
		}
	}
	return out
}

// validateProvider checks the hosted-provider blocks of backend b at p.
func (v *validator) validateProvider(p string, b *Backend) {
	switch {
	case b.Protocol == ProtocolBedrock && b.AWS == nil:
		v.at(p, "backend %q: protocol bedrock needs an aws block with the region", b.Name)
	case b.Protocol != ProtocolBedrock && b.AWS != nil:
		v.at(p+".aws", "backend %q: aws applies to the bedrock protocol only, not %s", b.Name, b.Protocol)
	case b.AWS != nil && b.AWS.Region == "":
		v.at(p+".aws.region", "backend %q: aws.region is required (e.g. us-east-1)", b.Name)
	case b.AWS != nil && b.AWS.API != "" && b.AWS.API != BedrockConverse && b.AWS.API != BedrockInvoke:
		v.at(p+".aws.api", "backend %q: aws.api is converse or invoke, not %q", b.Name, b.AWS.API)
	}
	if b.OpenAI != nil && (b.Protocol != ProtocolOpenAI || b.Azure != nil) {
		v.at(p+".openai", "backend %q: openai (organization, project) applies to OpenAI platform backends only (protocol openai, no azure)", b.Name)
	}
	if b.Protocol == ProtocolBedrock && b.Credential != nil {
		v.at(p+".credential", "backend %q: a bedrock backend is signed with AWS credentials (aws), not a static credential", b.Name)
	}
}

// sameAWS reports whether two backends sign alike (hence one Host) and
// take the same fixed headers: a request is signed once, for the version's
// backend, and a retry on a fallback reuses it; its route's headers are
// the first backend's.
func sameAWS(a, b *Backend) bool {
	if !slices.Equal(a.UpstreamHeaders(), b.UpstreamHeaders()) {
		return false
	}
	if a.AWS == nil || b.AWS == nil {
		return a.AWS == nil && b.AWS == nil
	}
	x, y := a.AWS, b.AWS
	return x.Region == y.Region && x.SigningHost() == y.SigningHost() && x.Profile == y.Profile && x.Invoke() == y.Invoke() &&
		slices.Equal(x.ConfigFiles, y.ConfigFiles) && slices.Equal(x.CredentialsFiles, y.CredentialsFiles)
}

// DefaultEntraScope is the OAuth2 scope of Azure OpenAI bearer tokens.
const DefaultEntraScope = "https://cognitiveservices.azure.com/.default"

// Azure makes an openai backend an Azure OpenAI resource: requests go to
// the deployment named by the model's upstream_model,
// /openai/deployments/{deployment}/chat/completions?api-version=..., with
// the resource's api-key (credential with header api-key) or a Microsoft
// Entra ID bearer token (entra).
type Azure struct {
	// APIVersion is the api-version query parameter of every request,
	// e.g. 2024-10-21 (required).
	APIVersion string `yaml:"api_version"`
	// Entra, when set, authorizes requests with bearer tokens of an Entra
	// ID application (client credentials flow), cached and refreshed
	// before they expire; leave credential unset then.
	Entra *Entra `yaml:"entra"`
}

// Entra is an Entra ID (Azure AD) application the gateway gets tokens as.
type Entra struct {
	// TenantID is the directory (tenant) id; it names the token endpoint.
	TenantID string `yaml:"tenant_id"`
	// ClientID is the application (client) id.
	ClientID string `yaml:"client_id"`
	// ClientSecretEnv names the environment variable holding the client
	// secret.
	ClientSecretEnv string `yaml:"client_secret_env"`
	// ClientSecretFile is a file holding the client secret.
	ClientSecretFile string `yaml:"client_secret_file"`
	// TokenURL overrides the token endpoint; empty means
	// https://login.microsoftonline.com/TENANT_ID/oauth2/v2.0/token.
	TokenURL string `yaml:"token_url"`
	// Scope is the scope asked for; empty means
	// https://cognitiveservices.azure.com/.default.
	Scope string `yaml:"scope"`
}

// Endpoint is the token endpoint.
func (e *Entra) Endpoint() string {
	if e.TokenURL != "" {
		return e.TokenURL
	}
	return "https://login.microsoftonline.com/" + e.TenantID + "/oauth2/v2.0/token"
}

// Scopes are the scopes asked for.
func (e *Entra) Scopes() []string {
	if e.Scope != "" {
		return []string{e.Scope}
	}
	return []string{DefaultEntraScope}
}

// validateAzure checks backend b's azure block at p.
func (v *validator) validateAzure(p string, b *Backend) {
	a := b.Azure
	if a == nil {
		return
	}
	if b.Protocol != ProtocolOpenAI {
		v.at(p+".azure", "backend %q: azure applies to the openai protocol only, not %s", b.Name, b.Protocol)
	}
	if a.APIVersion == "" {
		v.at(p+".azure.api_version", "backend %q: azure.api_version is required (e.g. 2024-10-21)", b.Name)
	}
	if b.ResponsesAPI {
		v.at(p+".responses_api", "backend %q: responses_api is not supported on Azure OpenAI backends", b.Name)
	}
	e := a.Entra
	if e == nil {
		return
	}
	if b.Credential != nil {
		v.at(p+".credential", "backend %q: use either credential (api-key) or azure.entra, not both", b.Name)
	}
	if e.ClientID == "" || (e.TenantID == "" && e.TokenURL == "") {
		v.at(p+".azure.entra", "backend %q: azure.entra needs client_id and tenant_id (or token_url)", b.Name)
	}
	if (e.ClientSecretEnv == "") == (e.ClientSecretFile == "") {
		v.at(p+".azure.entra", "backend %q: azure.entra needs exactly one of client_secret_env or client_secret_file", b.Name)
	}
}

// sameAzure reports whether two backends take the same Azure settings: the
// deployment path and token are chosen once, for the version's backend.
func sameAzure(a, b *Backend) bool {
	if a.Azure == nil || b.Azure == nil {
		return a.Azure == nil && b.Azure == nil
	}
	if a.Azure.APIVersion != b.Azure.APIVersion || (a.Azure.Entra == nil) != (b.Azure.Entra == nil) {
		return false
	}
	return a.Azure.Entra == nil || *a.Azure.Entra == *b.Azure.Entra
}

package config

import "slices"

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
}

// SigningHost is the host requests to the backend are signed for and sent
// with.
func (a *AWS) SigningHost() string {
	if a.Host != "" {
		return a.Host
	}
	return "bedrock-runtime." + a.Region + ".amazonaws.com"
}

// UpstreamHost is the Host header Envoy must send to b: the signed host
// of a bedrock backend, empty (the client's) for the others.
func (b *Backend) UpstreamHost() string {
	if b.AWS != nil && b.Protocol == ProtocolBedrock {
		return b.AWS.SigningHost()
	}
	return ""
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
	}
	if b.Protocol == ProtocolBedrock && b.Credential != nil {
		v.at(p+".credential", "backend %q: a bedrock backend is signed with AWS credentials (aws), not a static credential", b.Name)
	}
}

// sameAWS reports whether two backends sign alike: a request is signed
// once, for the version's backend, and a retry on a fallback reuses it.
func sameAWS(a, b *Backend) bool {
	if a.AWS == nil || b.AWS == nil {
		return a.AWS == nil && b.AWS == nil
	}
	x, y := a.AWS, b.AWS
	return x.Region == y.Region && x.SigningHost() == y.SigningHost() && x.Profile == y.Profile &&
		slices.Equal(x.ConfigFiles, y.ConfigFiles) && slices.Equal(x.CredentialsFiles, y.CredentialsFiles)
}

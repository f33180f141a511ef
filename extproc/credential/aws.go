package credential

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/streamgate/streamgate/config"
)

// bedrockService is the SigV4 signing name of the Bedrock Runtime API.
const bedrockService = "bedrock"

// retrieveTimeout bounds fetching credentials when the cache has none
// fresh (web identity, container or instance metadata round trips).
const retrieveTimeout = 3 * time.Second

// AWS signs requests with SigV4 for one backend: the AWS SDK's signer with
// credentials from the SDK's default chain, cached and refreshed by the
// SDK's credentials cache.
type AWS struct {
	creds  aws.CredentialsProvider
	signer *v4.Signer
	region string
	host   string
	now    func() time.Time
}

var _ Signer = (*AWS)(nil)

// NewAWS loads the credential chain for a backend's aws block. Nothing is
// fetched yet: the first Sign (or Warm) does.
func NewAWS(ctx context.Context, a *config.AWS) (*AWS, error) {
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(a.Region)}
	if a.Profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(a.Profile))
	}
	if len(a.ConfigFiles) > 0 {
		opts = append(opts, awsconfig.WithSharedConfigFiles(a.ConfigFiles))
	}
	if len(a.CredentialsFiles) > 0 {
		opts = append(opts, awsconfig.WithSharedCredentialsFiles(a.CredentialsFiles))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot load AWS configuration: %w", err)
	}
	if cfg.Credentials == nil {
		return nil, fmt.Errorf("cannot load AWS configuration: no credential provider")
	}
	return &AWS{creds: cfg.Credentials, signer: v4.NewSigner(), region: a.Region, host: a.SigningHost(), now: time.Now}, nil
}

// Warm fetches the credentials once in the background so that the first
// request finds them cached; a failure is logged (without secrets) and
// retried by the first Sign.
func (s *AWS) Warm(ctx context.Context, log *slog.Logger, backend string) {
	go func() {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := s.creds.Retrieve(ctx); err != nil && ctx.Err() == nil {
			log.Warn("cannot fetch AWS credentials", "backend", backend, "error", err)
		}
	}()
}

// Sign returns the SigV4 headers for POST https://host/path with body:
// authorization, x-amz-date, x-amz-content-sha256 (the payload hash, over
// the final body) and, for temporary credentials, x-amz-security-token.
// The signature covers exactly these headers and host; Envoy must send
// the request with this host and path.
func (s *AWS) Sign(ctx context.Context, path string, body []byte) ([][2]string, error) {
	ctx, cancel := context.WithTimeout(ctx, retrieveTimeout)
	defer cancel()
	creds, err := s.creds.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot fetch AWS credentials: %w: %w", ErrUnavailable, err)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	u, err := url.Parse("https://" + s.host + path)
	if err != nil {
		return nil, fmt.Errorf("cannot sign path %q: %w", path, err)
	}
	req := &http.Request{Method: http.MethodPost, URL: u, Host: s.host, Header: http.Header{"X-Amz-Content-Sha256": {hash}}}
	if err := s.signer.SignHTTP(ctx, creds, req, hash, bedrockService, s.region, s.now()); err != nil {
		return nil, fmt.Errorf("cannot sign request: %w", err)
	}
	out := [][2]string{
		{"authorization", req.Header.Get("Authorization")},
		{"x-amz-date", req.Header.Get("X-Amz-Date")},
		{"x-amz-content-sha256", hash},
	}
	if t := req.Header.Get("X-Amz-Security-Token"); t != "" {
		out = append(out, [2]string{"x-amz-security-token", t})
	}
	return out, nil
}

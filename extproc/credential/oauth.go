package credential

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/streamgate/streamgate/config"
)

// refreshEarly is how long before its expiry a cached token is replaced,
// so that no request goes out with a token about to expire.
const refreshEarly = 5 * time.Minute

// tokenTimeout bounds one token request when the cache has none fresh.
const tokenTimeout = 5 * time.Second

// OAuth authorizes requests with a bearer token of the OAuth2 client
// credentials flow (Microsoft Entra ID for Azure OpenAI), fetched by
// golang.org/x/oauth2/clientcredentials and cached until refreshEarly
// before it expires.
type OAuth struct {
	src oauth2.TokenSource
}

var _ Signer = (*OAuth)(nil)

// NewEntra builds the token source of an azure.entra block; the client
// secret is read now from its env var or file.
func NewEntra(ctx context.Context, e *config.Entra) (*OAuth, error) {
	secret := os.Getenv(e.ClientSecretEnv)
	if e.ClientSecretFile != "" {
		b, err := os.ReadFile(e.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read the Entra client secret: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	if secret == "" {
		return nil, fmt.Errorf("cannot read the Entra client secret: it is empty")
	}
	cc := &clientcredentials.Config{ClientID: e.ClientID, ClientSecret: secret, TokenURL: e.Endpoint(), Scopes: e.Scopes(), AuthStyle: oauth2.AuthStyleInParams}
	// The token source outlives any one request: it fetches with its own
	// context (ctx: the config's lifetime), bounded by tokenTimeout through
	// the HTTP client.
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: tokenTimeout})
	return &OAuth{src: oauth2.ReuseTokenSourceWithExpiry(nil, cc.TokenSource(ctx), refreshEarly)}, nil
}

// Sign returns the authorization header with a cached or fresh token.
func (o *OAuth) Sign(_ context.Context, _ string, _ []byte) ([][2]string, error) {
	tok, err := o.src.Token()
	if err != nil {
		return nil, fmt.Errorf("cannot get an OAuth2 token: %w: %w", ErrUnavailable, err)
	}
	return [][2]string{{"authorization", "Bearer " + tok.AccessToken}}, nil
}

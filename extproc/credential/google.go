package credential

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/streamgate/streamgate/config"
)

// NewVertex builds the token source of a vertex block with Google's
// maintained library (golang.org/x/oauth2/google): a service account key
// file when credentials_file is set (its token_uri is the token endpoint,
// the assertion a JWT signed with its private key), else Application
// Default Credentials. Tokens are cached and replaced refreshEarly before
// they expire; the key file is read now, the first token fetched on the
// first request.
func NewVertex(ctx context.Context, v *config.Vertex) (*OAuth, error) {
	// The token source outlives any one request: it fetches with its own
	// context (ctx: the config's lifetime), bounded by tokenTimeout.
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: tokenTimeout})
	var creds *google.Credentials
	var err error
	if v.CredentialsFile != "" {
		data, rerr := os.ReadFile(v.CredentialsFile)
		if rerr != nil {
			return nil, fmt.Errorf("cannot read the Google credentials file: %w", rerr)
		}
		creds, err = google.CredentialsFromJSONWithType(ctx, data, google.ServiceAccount, config.VertexScope)
	} else {
		creds, err = google.FindDefaultCredentials(ctx, config.VertexScope)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot load Google credentials: %w", err)
	}
	return &OAuth{src: oauth2.ReuseTokenSourceWithExpiry(nil, creds.TokenSource, refreshEarly)}, nil
}

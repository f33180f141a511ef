// Package credential authorizes the requests the gateway sends to hosted
// model providers whose credential is not a static header: AWS SigV4
// signatures (Bedrock) made by the AWS SDK's signer from the SDK's default
// credential chain. Secrets never leave this package except inside the
// headers it returns, and are never logged.
package credential

import (
	"context"
	"errors"
)

// Signer authorizes one upstream request once its final path and body are
// known. Implementations are safe for concurrent use and cache whatever
// they fetch (credentials, tokens), so a call costs no round trip in the
// steady state.
type Signer interface {
	// Sign returns the headers to set on a POST of body to path (which
	// may hold a query), as name/value pairs.
	Sign(ctx context.Context, path string, body []byte) ([][2]string, error)
}

// ErrUnavailable marks a request the gateway could not authorize because
// no credential could be obtained (none configured, the provider's token
// endpoint down, ...).
var ErrUnavailable = errors.New("upstream credentials unavailable")

package extproc

import (
	"strconv"

	"github.com/streamgate/streamgate/config"
)

// The first-byte deadline (gateway.first_byte_timeout, a backend's
// first_byte_timeout) is Envoy's per-try timeout, set per request: the
// router abandons a try whose response headers have not arrived in time
// and, on a failover route (retry_on 5xx), tries the chain's next backend;
// with none left Envoy answers 504 itself (the local reply mappers give it
// the client API's error shape). Once response headers have reached the
// client the timer no longer applies, so a running stream is never cut by
// it. Only streaming requests get it: a non-streaming answer's headers
// come with the whole generation, which the deadline must not bound.

// firstByteTimeout is the deadline of requests routed to backend, as the
// header value (whole milliseconds, at least 1); "" for none.
func firstByteTimeout(cfg *config.Config, backend string) string {
	d := cfg.FirstByteTimeout(backend)
	if d <= 0 {
		return ""
	}
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10)
}

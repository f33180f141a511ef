package auth

import (
	"crypto/sha256"
	"sync"
	"time"
)

// Verified-token cache bounds. A cached token skips the signature check for
// at most tokenCacheTTL, so a key withdrawn from a JWKS stops working within
// that time even for tokens already seen.
const (
	tokenCacheTTL     = time.Minute
	tokenCacheEntries = 4096
)

// tokenCache remembers JWTs that verified, keyed by the SHA-256 of the whole
// token, until the earlier of their expiry and tokenCacheTTL. Only
// successes are stored, so refused tokens cannot fill it. Safe for
// concurrent use.
type tokenCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]cachedToken
}

type cachedToken struct {
	tenant *Tenant
	until  time.Time
}

// get returns the tenant of a token verified before and still fresh at now.
func (c *tokenCache) get(sum [sha256.Size]byte, now time.Time) *Tenant {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[sum]
	if !ok {
		return nil
	}
	if !now.Before(e.until) {
		delete(c.m, sum)
		return nil
	}
	return e.tenant
}

// put stores a verified token until min(exp, now+tokenCacheTTL). When full it
// starts over, which costs at most one signature check per live token.
func (c *tokenCache) put(sum [sha256.Size]byte, t *Tenant, exp, now time.Time) {
	until := now.Add(tokenCacheTTL)
	if exp.Before(until) {
		until = exp
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= tokenCacheEntries {
		c.m = make(map[[sha256.Size]byte]cachedToken, 64)
	}
	c.m[sum] = cachedToken{tenant: t, until: until}
}

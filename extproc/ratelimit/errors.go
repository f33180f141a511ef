package ratelimit

import (
	"errors"
	"fmt"
	"time"
)

// Sentinels a denied admission wraps; match with errors.Is.
var (
	// ErrRateLimited: a request or token rate limit is spent (HTTP 429).
	ErrRateLimited = errors.New("rate limit exceeded")
	// ErrTenantBusy: the tenant's concurrent streams stayed full past the
	// queue's max wait, or the queue is full (HTTP 429).
	ErrTenantBusy = errors.New("too many concurrent streams for tenant")
	// ErrBackendBusy: the backend's in-flight streams stayed full (HTTP 503).
	ErrBackendBusy = errors.New("backend at capacity")
	// ErrStoreUnavailable: the shared store cannot be reached and the
	// limiter fails closed (HTTP 503).
	ErrStoreUnavailable = errors.New("rate limit store unavailable")
)

// DeniedError is an admission refusal: which limit and when to retry.
type DeniedError struct {
	Kind       error
	RetryAfter time.Duration
	// What names the limit for the client's message, e.g. "tokens per minute".
	What string
}

func (e *DeniedError) Error() string {
	if e.What == "" {
		return e.Kind.Error()
	}
	return fmt.Sprintf("%s: %s", e.Kind.Error(), e.What)
}

// Unwrap returns the sentinel.
func (e *DeniedError) Unwrap() error { return e.Kind }

// RetryAfterSeconds is RetryAfter rounded up to whole seconds, at least 1:
// the value of a Retry-After header.
func (e *DeniedError) RetryAfterSeconds() int64 {
	s := int64((e.RetryAfter + time.Second - 1) / time.Second)
	return max(s, 1)
}

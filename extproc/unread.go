package extproc

import (
	"net/http"
	"time"
)

// unreadWarnEvery spaces the warnings about responses whose usage could not
// be read; streamgate_usage_unread_total counts every one.
const unreadWarnEvery = time.Minute

// responseSucceeded reports whether the backend's response was a success,
// or its status is unknown: then its tokens may have been generated.
func (p *processor) responseSucceeded() bool {
	s := p.status
	return s == 0 || s >= http.StatusOK && s < http.StatusMultipleChoices
}

// Reasons a limited response's usage could not be read, the values of
// streamgate_usage_unread_total's reason label.
const (
	unreadMissing    = "missing"    // the body ended without a readable usage
	unreadIncomplete = "incomplete" // the response stopped early
	unreadTooLarge   = "too_large"  // a streamed event outgrew the meter's bound
	// unreadEstimated: Envoy reported no usage (the stream was cut, most
	// often by the client leaving); the output was estimated from the bytes
	// the backend sent (reportusage.go).
	unreadEstimated = "estimated"
)

// unreadReasons lists every reason, for the metric's initial series.
var unreadReasons = []string{unreadMissing, unreadIncomplete, unreadTooLarge, unreadEstimated}

// unreadReason is the reason for a non-streamed body whose usage could not
// be read: ended says whether the body ended or the response stopped early.
func unreadReason(ended bool) string {
	if ended {
		return unreadMissing
	}
	return unreadIncomplete
}

// usageUnread records a limited, successful response whose usage could not
// be read, which is charged (at least) its reserved output instead. It
// counts the response in streamgate_usage_unread_total{reason} and warns at
// most once a minute per server.
func (p *processor) usageUnread(reason string) {
	p.metrics.usageUnread(reason)
	now := time.Now().UnixNano()
	last := p.limits.lastUnreadWarn.Load()
	if now-last < int64(unreadWarnEvery) || !p.limits.lastUnreadWarn.CompareAndSwap(last, now) {
		return
	}
	p.log.Warn("a limited response's usage could not be read; it was charged its reserved output tokens, or an estimate from the bytes sent where reason is estimated (counted in streamgate_usage_unread_total)",
		"request_id", p.requestID, "tenant", p.Tenant, "reason", reason)
}

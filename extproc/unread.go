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
	s := p.obs.status
	return s == 0 || s >= http.StatusOK && s < http.StatusMultipleChoices
}

// usageUnread records a limited, successful non-streamed response whose
// usage could not be read, which is charged its reserved output instead:
// ended says whether the body ended (without a readable usage object) or
// the response stopped early (client gone, stream reset). It counts the
// response in streamgate_usage_unread_total and warns at most once a
// minute per server.
func (p *processor) usageUnread(ended bool) {
	reason := "incomplete"
	if ended {
		reason = "missing"
	}
	p.metrics.usageUnread(reason)
	now := time.Now().UnixNano()
	last := p.limits.lastUnreadWarn.Load()
	if now-last < int64(unreadWarnEvery) || !p.limits.lastUnreadWarn.CompareAndSwap(last, now) {
		return
	}
	p.log.Warn("a limited response's usage could not be read; it was charged its reserved output tokens (counted in streamgate_usage_unread_total)",
		"request_id", p.requestID, "tenant", p.Tenant, "reason", reason)
}

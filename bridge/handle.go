package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/streamgate/streamgate/extproc"
)

// handle delivers one request message: parse, deduplicate, call the
// gateway, publish the result, then acknowledge; or nak it with a backoff,
// or dead-letter it. It holds one admission slot, returned on exit.
func (b *Bridge) handle(ctx context.Context, s *source, m Message) {
	// Bounds everything, publications included (a core NATS flush needs a
	// deadline), so a stopping bridge never waits on a broker forever.
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout+handleSlack)
	defer cancel()
	ok, overloaded := false, false
	var ttfb time.Duration
	defer func() { b.adm.done(ok, overloaded, ttfb) }()
	env, err := ParseEnvelope(m.Data())
	if err != nil {
		b.deadLetter(ctx, s, m, env, "", err, 0, nil)
		return
	}
	tenant := env.Credential
	if tenant == "" {
		tenant = s.cfg.Credential
	}
	if b.answered(ctx, s, env.ID) {
		b.ack(ctx, s, m, tenant, "", outcomeDuplicate)
		return
	}
	if env.Deadline != nil && !b.now().Before(*env.Deadline) {
		b.deadLetter(ctx, s, m, env, tenant, refuse(extproc.ErrDeadlineExceeded, "The request's deadline passed before it was sent."), 0, nil)
		return
	}
	key, known := b.keys[tenant]
	if !known {
		b.deadLetter(ctx, s, m, env, tenant, refuse(extproc.ErrUnknownCredentialRef, "The credential %q is not one the bridge holds.", tenant), 0, nil)
		return
	}
	stopWorking := b.keepWorking(ctx, m)
	res := b.call(ctx, s, env, key, m.Delivery())
	stopWorking()
	ttfb = res.ttfb
	switch {
	case res.published:
		ok = true
		b.metrics.latency.WithLabelValues(s.Name()).Observe(b.now().Sub(m.Enqueued()).Seconds())
		b.ack(ctx, s, m, tenant, env.ID, outcomeAck)
	case res.retry:
		overloaded = res.status == http.StatusTooManyRequests || res.status == http.StatusServiceUnavailable
		b.retry(ctx, s, m, env, tenant, res)
	default:
		b.deadLetter(ctx, s, m, env, tenant, res.err, res.status, res.body)
	}
}

// handleSlack is what handling a message may take beyond the request's
// own timeout: the journal, publishing, acknowledging.
const handleSlack = time.Minute

// answered reports whether id's result was published already: in this
// process's cache, or the source's journal (an earlier run). A journal
// that cannot be read counts as not answered: at least once wins.
func (b *Bridge) answered(ctx context.Context, s *source, id string) bool {
	if s.seen.has(id) {
		return true
	}
	seen, err := s.Journal().Seen(ctx, id)
	if err != nil {
		b.log.Warn("bridge: cannot read the dedupe journal", "source", s.Name(), "error", err.Error())
		return false
	}
	if seen {
		s.seen.add(id, time.Time{})
	}
	return seen
}

// ack records id (when set) as answered, counts outcome (when set), then
// acknowledges m.
func (b *Bridge) ack(ctx context.Context, s *source, m Message, tenant, id, outcome string) {
	if id != "" {
		s.seen.add(id, time.Time{})
		if err := s.Journal().Record(ctx, id); err != nil {
			b.log.Warn("bridge: cannot record a published result in the dedupe journal", "source", s.Name(), "error", err.Error())
		}
	}
	if outcome != "" {
		b.count(s, tenant, outcome)
	}
	if err := m.Ack(ctx); err != nil {
		b.log.Warn("bridge: cannot acknowledge a message; it will be redelivered and deduplicated", "source", s.Name(), "error", err.Error())
	}
}

// retry naks m for a later attempt, or dead-letters it once
// bridge.max_attempts deliveries failed or the deadline would pass first.
func (b *Bridge) retry(ctx context.Context, s *source, m Message, env *Envelope, tenant string, res result) {
	delay := b.backoff(m.Delivery(), res.retryAfter)
	late := env.Deadline != nil && b.now().Add(delay).After(*env.Deadline)
	if m.Delivery() >= b.cfg.MaxAttempts || late {
		err := refuse(extproc.ErrAttemptsExhausted, "The gateway refused or failed the request on %d attempts (last status %d).", m.Delivery(), res.status)
		if late {
			err = refuse(extproc.ErrDeadlineExceeded, "The request's deadline passes before it could be tried again (last status %d).", res.status)
		}
		b.deadLetter(ctx, s, m, env, tenant, err, res.status, res.body)
		return
	}
	b.count(s, tenant, outcomeNak)
	if err := m.Nak(ctx, delay); err != nil {
		b.log.Warn("bridge: cannot nak a message; the broker redelivers it after its ack wait", "source", s.Name(), "error", err.Error())
	}
}

// backoff is the delay before delivery n+1: bridge.backoff doubled per
// earlier delivery, capped at max_backoff; a longer Retry-After wins.
func (b *Bridge) backoff(n int, retryAfter time.Duration) time.Duration {
	d := b.cfg.Backoff
	for i := 1; i < n && d < b.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return max(min(d, b.cfg.MaxBackoff), retryAfter)
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.ParseInt(h, 10, 64); err == nil && s >= 0 {
		return time.Duration(min(s, 3600)) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return min(t.Sub(now), time.Hour)
	}
	return 0
}

// deadLetter publishes a refused request to the source's dead-letter
// destination with the reason and a protocol-correct error body (the
// gateway's own when it refused), tells the requester (when the envelope
// could be read) with the same error as its result, and acknowledges m.
// status and body are the gateway's answer, when there was one.
func (b *Bridge) deadLetter(ctx context.Context, s *source, m Message, env *Envelope, tenant string, err error, status int, body []byte) {
	var msg string
	var ee *envelopeError
	if errors.As(err, &ee) {
		msg = ee.msg
	}
	st, code, errBody := extproc.RefusalBody(err, msg)
	if body == nil || !json.Valid(body) {
		status, body = st, errBody
	} else {
		code = gatewayCode(body, code)
	}
	dl := deadLetterMessage{Source: s.Name(), Reason: code, Attempts: m.Delivery(), Status: status, Body: body, Message: string(m.Data())}
	id := ""
	if env != nil {
		id, dl.ID = env.ID, env.ID
	}
	data, _ := json.Marshal(dl)
	if perr := s.Publish(ctx, s.cfg.DeadLetter, []Outgoing{{Key: dlKey(id, m), ID: id, Data: data}}); perr != nil {
		b.log.Error("bridge: cannot dead-letter a message; it will be redelivered", "source", s.Name(), "error", perr.Error())
		_ = m.Nak(ctx, b.cfg.Backoff)
		return
	}
	b.log.Info("bridge: request dead-lettered", "source", s.Name(), "id", id, "tenant", tenant, "reason", code, "status", status, "attempts", m.Delivery())
	answered := ""
	if env != nil && !b.answered(ctx, s, env.ID) {
		if perr := b.publishResult(ctx, s, env, resultMessage{ID: env.ID, Status: status, Attempt: m.Delivery(), Body: body}); perr != nil {
			b.log.Warn("bridge: cannot publish the error result", "source", s.Name(), "error", perr.Error())
		} else {
			answered = env.ID
		}
	}
	b.ack(ctx, s, m, tenant, answered, outcomeDeadLetter)
}

// dlKey is the dead letter's broker dedupe key.
func dlKey(id string, m Message) string {
	if id == "" {
		return ""
	}
	return "dl:" + id + ":" + strconv.Itoa(m.Delivery())
}

// gatewayCode reads error.code from an OpenAI error body, or returns def.
func gatewayCode(body []byte, def string) string {
	var e struct {
		Error struct {
			Code any `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil {
		if c, ok := e.Error.Code.(string); ok && c != "" {
			return c
		}
	}
	return def
}

// keepWorking tells the broker every ackWorkingEvery that m is still being
// handled (JetStream's ack wait), until the returned stop is called.
func (b *Bridge) keepWorking(ctx context.Context, m Message) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(ackWorkingEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				m.Working(ctx)
			}
		}
	}()
	return func() { close(done) }
}

// ackWorkingEvery is a third of the JetStream consumer's ack wait.
const ackWorkingEvery = ackWait / 3

func (b *Bridge) count(s *source, tenant, outcome string) {
	b.metrics.messages.WithLabelValues(s.Name(), tenant, outcome).Inc()
}

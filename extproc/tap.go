package extproc

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/streamgate/streamgate/contract"
)

// tapClaimTimeout bounds how long a handed-over request waits for its tap
// stream. Envoy opens the tap stream as soon as it has the body answer, so
// this only runs out when the request died in between or the usage filter
// is not installed (drop-in mode); the reservation is then settled with
// the estimate.
const tapClaimTimeout = 10 * time.Second

// taps pairs requests with their usage tap streams (contract.UsageFilter).
// A limited request whose response Streamgate only needs to read is handed
// over when its body is answered: the main ext_proc stream ends at once,
// and the processor, reservation and all, continues on the tap stream,
// which Envoy feeds without waiting for answers.
type taps struct {
	prefix  string
	next    atomic.Uint64
	pending sync.Map // key -> *tapEntry
	log     *slog.Logger
	// active counts requests in flight (Server.Active): a parked request
	// counts until it is settled.
	active *atomic.Int64
	// lastWarn is when an unclaimed request was last logged (unix nanos).
	lastWarn atomic.Int64
	// wait is how long a handed-over request waits for its tap stream.
	wait time.Duration
}

type tapEntry struct {
	p     *processor
	timer *time.Timer
}

func newTaps(log *slog.Logger, active *atomic.Int64) *taps {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &taps{prefix: hex.EncodeToString(b[:]) + "-", log: log, active: active, wait: tapClaimTimeout}
}

// newKey names a request to be handed over. Safe for concurrent use.
func (t *taps) newKey() string {
	return t.prefix + strconv.FormatUint(t.next.Add(1), 36)
}

// park hands p over under p.tapKey until its tap stream claims it. The
// caller must not touch p afterwards. Safe for concurrent use.
func (t *taps) park(p *processor) {
	key := p.tapKey
	t.active.Add(1)
	e := &tapEntry{p: p}
	e.timer = time.AfterFunc(t.wait, func() {
		if _, ok := t.pending.LoadAndDelete(key); !ok {
			return
		}
		defer t.active.Add(-1)
		now := time.Now().UnixNano()
		if last := t.lastWarn.Load(); now-last > int64(time.Minute) && t.lastWarn.CompareAndSwap(last, now) {
			t.log.Warn("a limited request's usage tap stream never came; its reservation was settled with the estimate (is the "+contract.UsageFilter+" filter installed?)",
				"request_id", p.requestID, "tenant", p.Tenant)
		}
		p.finish()
	})
	t.pending.Store(key, e)
}

// claim takes the processor parked under key, or nil. The caller settles
// it (finish) and then calls settled.
func (t *taps) claim(key string) *processor {
	v, ok := t.pending.LoadAndDelete(key)
	if !ok {
		return nil
	}
	e := v.(*tapEntry)
	e.timer.Stop()
	return e.p
}

// settled marks a claimed request done.
func (t *taps) settled() { t.active.Add(-1) }

// tap serves a usage tap stream whose first message is first: it claims the
// request handed over under the key in the forwarded metadata and feeds it
// the response. Envoy ignores answers on a tap stream, so none are sent. A
// stream with no request to claim ends at once, which tells Envoy to send
// nothing more.
func (s *Server) tap(stream extprocsvcv3.ExternalProcessor_ProcessServer, first *extprocsvcv3.ProcessingRequest) error {
	md := first.GetMetadataContext().GetFilterMetadata()[contract.TapNamespace]
	p := s.taps.claim(md.GetFields()[contract.TapMetadataKey].GetStringValue())
	if p == nil {
		return nil
	}
	p.ctx = stream.Context()
	defer s.taps.settled()
	defer p.finish()
	for req := first; ; {
		switch req.Request.(type) {
		case *extprocsvcv3.ProcessingRequest_ResponseHeaders, *extprocsvcv3.ProcessingRequest_ResponseBody, *extprocsvcv3.ProcessingRequest_ResponseTrailers:
			p.handle(req)
		}
		if req.GetResponseHeaders().GetEndOfStream() || req.GetResponseBody().GetEndOfStream() {
			return nil
		}
		var err error
		if req, err = stream.Recv(); err != nil {
			// Envoy closed the tap stream: the client left mid-response
			// (the reservation is settled with what was counted).
			return nil
		}
	}
}

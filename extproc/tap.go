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

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/xds"
)

// tapClaimTimeout bounds how long a handed-over request waits for its tap
// stream. Envoy opens the tap stream as soon as it has the body answer, so
// this only runs out when the request died in between or the usage filter
// is not installed (drop-in mode); the reservation is then settled with
// the estimate.
const tapClaimTimeout = 10 * time.Second

// taps pairs requests with their usage tap streams (xds.UsageFilterName).
// A limited request whose response Streamgate only needs to read is handed
// over when its body is answered: the main ext_proc stream ends at once,
// and the processor, reservation and all, continues on the tap stream,
// which Envoy feeds without waiting for answers.
type taps struct {
	prefix  string
	next    atomic.Uint64
	pending sync.Map // key -> *tapEntry
	log     *slog.Logger
	warned  atomic.Bool
	// wait is how long a handed-over request waits for its tap stream.
	wait time.Duration
}

type tapEntry struct {
	p     *processor
	timer *time.Timer
}

func newTaps(log *slog.Logger) *taps {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &taps{prefix: hex.EncodeToString(b[:]) + "-", log: log, wait: tapClaimTimeout}
}

// handOver parks p until its tap stream claims it and returns the key the
// tap stream will present. Safe for concurrent use.
func (t *taps) handOver(p *processor) string {
	key := t.prefix + strconv.FormatUint(t.next.Add(1), 36)
	e := &tapEntry{p: p}
	e.timer = time.AfterFunc(t.wait, func() {
		if _, ok := t.pending.LoadAndDelete(key); !ok {
			return
		}
		if t.warned.CompareAndSwap(false, true) {
			t.log.Warn("a limited request's usage tap stream never came; its reservation was settled with the estimate (is the "+xds.UsageFilterName+" filter installed?)",
				"request_id", p.requestID, "tenant", p.Tenant)
		}
		p.finish()
	})
	t.pending.Store(key, e)
	return key
}

// claim takes the processor parked under key, or nil.
func (t *taps) claim(key string) *processor {
	v, ok := t.pending.LoadAndDelete(key)
	if !ok {
		return nil
	}
	e := v.(*tapEntry)
	e.timer.Stop()
	return e.p
}

// canTap reports whether the request's response only needs reading: it
// holds a reservation settled by usage, skipped the response headers
// phase (nothing on its path translates, telemetry does not read every
// response), and nothing in its response is to be removed.
func (p *processor) canTap() bool {
	return p.taps != nil && p.limits != nil && p.limits.cfg.ReadUsage != config.ReadUsageInline && p.skipsResponseHeaders && p.tx == nil && !p.grpc &&
		p.lim != nil && p.lim.res != nil && !p.lim.strip && !p.obs.strip
}

// tap serves a usage tap stream whose first message is first: it claims the
// request handed over under the key in the forwarded metadata and feeds it
// the response. Envoy ignores answers on a tap stream, so none are sent. A
// stream with no request to claim ends at once, which tells Envoy to send
// nothing more.
func (s *Server) tap(stream extprocsvcv3.ExternalProcessor_ProcessServer, first *extprocsvcv3.ProcessingRequest) error {
	md := first.GetMetadataContext().GetFilterMetadata()[xds.TapNamespace]
	p := s.taps.claim(md.GetFields()[xds.TapMetadataKey].GetStringValue())
	if p == nil {
		return nil
	}
	p.ctx = stream.Context()
	defer p.finish()
	for req := first; ; {
		if _, opening := req.Request.(*extprocsvcv3.ProcessingRequest_RequestHeaders); !opening {
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

package extproc

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	alsdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	aiv3 "github.com/envoyproxy/go-control-plane/envoy/data/ai/v3"

	"github.com/streamgate/streamgate/contract"
	"github.com/streamgate/streamgate/extproc/tokens"
)

// reportWait bounds how long a handed-over request waits for its usage
// report. Envoy sends the report when the request's stream ends, so this
// runs out only when a report was lost (Envoy's access log buffer dropped
// it) or the reading filters are not installed (a drop-in Envoy without
// them); the reservation is then settled with the estimate. It is long
// because a token stream may run for many minutes.
const reportWait = time.Hour

// reports pairs requests whose usage Envoy reads with Envoy's usage report:
// the access log entry (contract.UsageReportLog) Envoy writes when the
// request's stream ends, carrying the token usage its AI protocol manager
// read off the response. A request is handed over when its body is
// answered: the ext_proc stream ends at once, and the processor,
// reservation and all, waits here, holding no goroutine or stream, until
// its report comes.
type reports struct {
	prefix  string
	next    atomic.Uint64
	pending sync.Map // key -> *reportEntry
	log     *slog.Logger
	// active counts requests in flight (Server.Active): a parked request
	// counts until it is settled.
	active *atomic.Int64
	// lastWarn is when an unreported request was last logged (unix nanos).
	lastWarn atomic.Int64
	// wait is how long a handed-over request waits for its report.
	wait time.Duration
	// perToken estimates the output of streams cut before their usage.
	perToken bytesPerToken
}

type reportEntry struct {
	p     *processor
	timer *time.Timer
}

func newReports(log *slog.Logger, active *atomic.Int64) *reports {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &reports{prefix: hex.EncodeToString(b[:]) + "-", log: log, active: active, wait: reportWait}
}

// newKey names a request to be handed over. Safe for concurrent use.
func (r *reports) newKey() string {
	return r.prefix + strconv.FormatUint(r.next.Add(1), 36)
}

// park hands p over under p.reportKey until its report claims it. The
// caller must not touch p afterwards. Safe for concurrent use.
func (r *reports) park(p *processor) {
	key := p.reportKey
	r.active.Add(1)
	e := &reportEntry{p: p}
	e.timer = time.AfterFunc(r.wait, func() {
		if _, ok := r.pending.LoadAndDelete(key); !ok {
			return
		}
		defer r.active.Add(-1)
		now := time.Now().UnixNano()
		if last := r.lastWarn.Load(); now-last > int64(time.Minute) && r.lastWarn.CompareAndSwap(last, now) {
			r.log.Warn("a request's usage report never came; it was settled with the estimate (are the "+contract.UsageFilter+" filter and the "+contract.UsageReportLog+" access log installed?)",
				"request_id", p.requestID, "tenant", p.Tenant)
		}
		// Nothing is known of the response: charge the reservation.
		p.meter.report = &reportedUsage{}
		p.finish()
	})
	r.pending.Store(key, e)
}

// claim takes the processor parked under key, or nil. The caller settles
// it (finish) and then calls settled.
func (r *reports) claim(key string) *processor {
	v, ok := r.pending.LoadAndDelete(key)
	if !ok {
		return nil
	}
	e := v.(*reportEntry)
	e.timer.Stop()
	return e.p
}

// settled marks a claimed request done.
func (r *reports) settled() { r.active.Add(-1) }

// settle applies one usage report: the request parked under its key
// learns its status, usage and timing, and is finished (limits settled,
// telemetry recorded). A report without a parked request (already settled
// by the timer, or sent by an Envoy this process did not hand a request
// to) is dropped. Safe for concurrent use.
func (r *reports) settle(e *alsdatav3.HTTPAccessLogEntry) {
	cp := e.GetCommonProperties()
	key := cp.GetMetadata().GetFilterMetadata()[contract.ReportNamespace].GetFields()[contract.ReportKey].GetStringValue()
	p := r.claim(key)
	if p == nil {
		return
	}
	defer r.settled()
	p.applyReport(e, &r.perToken)
	p.finish()
}

// applyReport reads the report into p: the status, the usage Envoy read
// (into the meter), the backend's first body byte and the stream's end.
func (p *processor) applyReport(e *alsdatav3.HTTPAccessLogEntry, perToken *bytesPerToken) {
	cp := e.GetCommonProperties()
	p.status = int(e.GetResponse().GetResponseCode().GetValue())
	rep := &reportedUsage{
		upstreamBytes: cp.GetUpstreamWireBytesReceived(),
		succeeded:     p.status >= 200 && p.status < 300,
		perToken:      perToken,
		key:           p.backendModel(),
	}
	if a := cp.GetMetadata().GetTypedFilterMetadata()[contract.EnvoyUsageNamespace]; a != nil {
		var u aiv3.TokenUsage
		if a.UnmarshalTo(&u) == nil && u.GetInputTokens() != nil && u.GetOutputTokens() != nil &&
			u.GetExtractionStatus() == aiv3.TokenUsage_COMPLETE {
			rep.usage = tokens.Usage{Input: clampTokens(u.GetInputTokens().GetValue()), Output: clampTokens(u.GetOutputTokens().GetValue())}
			rep.found, rep.model = true, u.GetModel()
		}
	}
	p.meter.report = rep
	if rep.found && rep.succeeded {
		perToken.learn(rep.key, rep.upstreamBytes, rep.usage.Output)
	}
	// Envoy's timings run from the request's first byte; the record's
	// start is when ext_proc saw the request, which Envoy's clock and this
	// one place a fraction of a millisecond later. The durations are
	// Envoy's, so that metrics and the access log agree.
	if us, err := strconv.ParseInt(cp.GetCustomTags()[contract.ReportTTFTTag], 10, 64); err == nil && us >= 0 {
		p.obs.firstByte = p.obs.start.Add(time.Duration(us) * time.Microsecond)
	}
	if d := cp.GetDuration(); d != nil {
		p.obs.end = p.obs.start.Add(d.AsDuration())
	}
}

// backendModel keys what is learnt about a response's bytes per token.
func (p *processor) backendModel() string {
	if p.route == nil {
		return ""
	}
	return p.route.Backend + "/" + p.route.UpstreamModel
}

// clampTokens bounds a reported count to what the limits can hold.
func clampTokens(n uint64) int64 {
	const most = 1 << 53
	return int64(min(n, most))
}

package extproc

import (
	"io"
	"log/slog"
	"sync/atomic"
	"testing"

	alsdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"google.golang.org/protobuf/proto"
)

// FuzzUsageReport: any access log entry Envoy (or anything on the local
// access log stream) sends as a usage report is read without panicking,
// and settles a parked request at most once, charging never less than
// nothing.
func FuzzUsageReport(f *testing.F) {
	for _, e := range []*alsdatav3.HTTPAccessLogEntry{
		usageReport(f, "k", 200, 4096, completeUsage(11, 5)),
		usageReport(f, "k", 200, 4096, nil),
		usageReport(f, "other", 503, 0, nil),
	} {
		b, err := proto.Marshal(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e alsdatav3.HTTPAccessLogEntry
		if proto.Unmarshal(b, &e) != nil {
			return
		}
		r := newReports(slog.New(slog.NewTextHandler(io.Discard, nil)), new(atomic.Int64))
		p := limitedProcessor(t, limitedYAML)
		p.handle(reqHeaders("POST", "/v1/chat/completions", false))
		p.handle(bodyMsg(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
		p.reportKey = "k"
		r.park(p)
		md := e.GetCommonProperties().GetMetadata()
		r.settle(&e)
		if md.GetFilterMetadata()["streamgate.report"].GetFields()["key"].GetStringValue() != "k" {
			if r.claim("k") == nil {
				t.Fatal("a report under another key settled the request")
			}
			r.settled()
		}
		r.settle(&e) // a second report finds nothing
		if n := r.active.Load(); n != 0 {
			t.Fatalf("%d requests still counted active", n)
		}
	})
}

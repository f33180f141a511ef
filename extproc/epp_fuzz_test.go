package extproc

import (
	"testing"
	"unsafe"

	"google.golang.org/protobuf/types/known/structpb"
)

// FuzzEPPRequest: any body yields a Request without panicking, and its
// prompt is a sub-slice of the body (never a copy, never out of bounds).
func FuzzEPPRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"prompt":"p","model":"a"}`,
		`{"model":"m","prompt":[1,2`,
		`{"mod\u0065l":"x","messages":"s"}`,
		`[{"model":"m"}]`, `{`, `"`, ``, "\x00{\"prompt\":\"\\\"\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := eppRequest(body)
		if len(r.Prompt) == 0 {
			return
		}
		start := uintptr(unsafe.Pointer(unsafe.SliceData(r.Prompt)))
		lo := uintptr(unsafe.Pointer(unsafe.SliceData(body)))
		if start < lo || start+uintptr(len(r.Prompt)) > lo+uintptr(len(body)) {
			t.Fatalf("prompt %q is not within the body %q", r.Prompt, body)
		}
	})
}

// FuzzEPPSubset: any subset hint string picks only the backend's endpoints.
func FuzzEPPSubset(f *testing.F) {
	for _, s := range []string{eppA, eppA + "," + eppB, " 127.0.0.1:8003 ,", "[::1]:80", ",,,", "127.0.0.1:08001"} {
		f.Add(s)
	}
	fx := newEPPFixture(f)
	ix := fx.epp.current()
	f.Fuzz(func(t *testing.T, hint string) {
		for _, v := range []*structpb.Value{structpb.NewStringValue(hint), subsetList(hint, eppB)} {
			eps := ix.subset(v)
			if len(eps) > len(ix.b.Endpoints()) {
				t.Fatalf("subset %q has %d endpoints", hint, len(eps))
			}
			for _, ep := range eps {
				if ix.byAddr[canonicalAddr(ep.Addr)] != ep {
					t.Fatalf("subset %q picked a foreign endpoint %s", hint, ep.Addr)
				}
			}
		}
	})
}

package extproc

import (
	"errors"
	"strings"

	"github.com/streamgate/streamgate/config"
)

// grpcOtherMethod labels a gRPC call whose path names no known method, so
// clients cannot grow metric series with made-up paths.
const grpcOtherMethod = "other"

// grpcDefault and grpcKnown index config.GRPCDefaultMethods and
// config.GRPCKnownMethods. Read-only after init.
var grpcDefault, grpcKnown = setOf(config.GRPCDefaultMethods), setOf(config.GRPCKnownMethods)

func setOf(names []string) map[string]bool {
	s := make(map[string]bool, len(names))
	for _, n := range names {
		s[n] = true
	}
	return s
}

// grpcMethodOf returns the known inference.GRPCInferenceService method
// path names, or grpcOtherMethod and false: another service, a made-up
// method, or anything longer.
func grpcMethodOf(path string) (string, bool) {
	name, ok := strings.CutPrefix(path, grpcServicePrefix)
	if !ok || !grpcKnown[name] {
		return grpcOtherMethod, false
	}
	return name, true
}

// grpcExtraMethods is the set of non-default methods every backend of
// chain enables with grpc_methods, or nil.
func grpcExtraMethods(cfg *config.Config, chain []string) map[string]bool {
	var out map[string]bool
	for i, name := range chain {
		b := cfg.Backend(name)
		if b == nil {
			return nil
		}
		has := setOf(b.GRPCMethods)
		if i == 0 {
			out = has
			continue
		}
		for m := range out {
			if !has[m] {
				delete(out, m)
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// grpcMethodAllowed reports whether route forwards the known method: the
// inference and metadata defaults always, others when its backends enable
// them.
func grpcMethodAllowed(route *Route, method string) bool {
	return grpcDefault[method] || route.GRPCMethods[method]
}

// ErrGRPCMethodDenied is a known gRPC method the model's backends do not
// enable (grpc_methods): PERMISSION_DENIED.
var ErrGRPCMethodDenied = errors.New("gRPC method not enabled")

// maxEchoedPath bounds the part of a client's path a refusal repeats.
const maxEchoedPath = 128

// clip shortens s to at most n bytes, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

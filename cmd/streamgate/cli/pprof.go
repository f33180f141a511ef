package cli

import (
	"flag"
	"net/http"
	"net/http/pprof"
)

// pprofPath is where the profiling endpoints are mounted.
const pprofPath = "/debug/pprof/"

// pprofFlag adds -pprof to fs: off by default, since a profile shows the
// process's code paths and a CPU profile costs CPU while it runs.
func pprofFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("pprof", false, "serve Go's profiling endpoints (net/http/pprof) under "+pprofPath+" on metrics.listen")
}

// mountPprof serves net/http/pprof's handlers on mux under pprofPath:
// the index, cmdline, CPU profile, symbol lookup, execution trace and every
// named profile (heap, allocs, goroutine, block, mutex, threadcreate).
// (Importing net/http/pprof also registers them on http.DefaultServeMux,
// which Streamgate never serves.)
func mountPprof(mux *http.ServeMux) {
	mux.HandleFunc(pprofPath, pprof.Index)
	mux.HandleFunc(pprofPath+"cmdline", pprof.Cmdline)
	mux.HandleFunc(pprofPath+"profile", pprof.Profile)
	mux.HandleFunc(pprofPath+"symbol", pprof.Symbol)
	mux.HandleFunc(pprofPath+"trace", pprof.Trace)
}

package config

// WithLocalExtProc returns c with the ext_proc server on the unix socket at
// path (an absolute file name) when the file left both extproc.listen and
// extproc.address unset; otherwise it returns c itself. `streamgate run`
// uses it when it starts Envoy on the same host: Envoy then reaches ext_proc,
// and its access log service (usage reports, gRPC calls) over the socket instead of
// loopback TCP, and no other local user can connect to a port. c is not
// changed; the copy shares everything but ExtProc.
func (c *Config) WithLocalExtProc(path string) *Config {
	if !c.ExtProc.Defaulted() {
		return c
	}
	cp := *c
	cp.ExtProc.Listen = "unix:" + path
	cp.ExtProc.listenDefaulted = false
	return &cp
}

// Defaulted reports whether the file left both listen and address unset,
// so that the address is Streamgate's to choose.
func (e ExtProc) Defaulted() bool {
	return e.listenDefaulted && e.Address == ""
}

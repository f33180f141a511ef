package config

import (
	"fmt"
	"net"
	"os"
	"time"
)

// Defaults of the client-facing resource bounds (docs/envoy-notes.md,
// "Resource bounds").
const (
	// DefaultMaxConcurrentStreams caps the HTTP/2 streams of one client
	// connection (Envoy's own default is 2^31-1).
	DefaultMaxConcurrentStreams = 100
	// DefaultRequestHeadersTimeout bounds the arrival of a request's headers.
	DefaultRequestHeadersTimeout = 10 * time.Second
	// DefaultRequestBodyTimeout bounds the arrival of a whole request, body
	// included; it stops counting once the request is complete or the
	// response has begun, so token streams are not cut.
	DefaultRequestBodyTimeout = time.Minute
	// DefaultMaxHeapBytes is the Envoy heap the overload manager measures
	// its pressure against.
	DefaultMaxHeapBytes = 1 << 30
	// minMaxHeapBytes is the smallest max_heap_bytes accepted: below it
	// Envoy would shed load at rest.
	minMaxHeapBytes = 64 << 20
	// maxH2Streams is the largest HTTP/2 max_concurrent_streams Envoy takes.
	maxH2Streams = 1<<31 - 1
)

// systemCABundles are where Linux distributions keep the system's trusted
// CA certificates (the list crypto/x509 searches), in order of preference.
var systemCABundles = []string{
	"/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu, Gentoo, distroless
	"/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL 6
	"/etc/ssl/ca-bundle.pem",                            // openSUSE
	"/etc/pki/tls/cacert.pem",                           // OpenELEC
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // CentOS, RHEL 7
	"/etc/ssl/cert.pem",                                 // Alpine
}

// SystemCABundle returns the system's CA bundle: $SSL_CERT_FILE when set,
// else the first of the usual Linux paths that exists; "" when none does.
func SystemCABundle() string {
	if f := os.Getenv("SSL_CERT_FILE"); f != "" {
		return f
	}
	for _, f := range systemCABundles {
		if st, err := os.Stat(f); err == nil && !st.IsDir() {
			return f
		}
	}
	return ""
}

// TrustedCA is the PEM bundle Envoy verifies the backend's certificate
// against: CAFile, else the system bundle found when the config was
// loaded; "" only with InsecureSkipVerify.
func (t *TLS) TrustedCA() string {
	if t.CAFile != "" {
		return t.CAFile
	}
	return t.systemCA
}

// ServerName is the name the backend's certificate must carry and the SNI
// sent: SNI, else the host of the first endpoint.
func (b *Backend) ServerName() string {
	if b.TLS != nil && b.TLS.SNI != "" {
		return b.TLS.SNI
	}
	if len(b.Endpoints) == 0 {
		return ""
	}
	host, _, _ := net.SplitHostPort(b.Endpoints[0].Address)
	return host
}

func (c *Config) applyEdgeDefaults() {
	if c.Gateway.MaxConcurrentStreams == 0 {
		c.Gateway.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	setDuration(&c.Gateway.RequestHeadersTimeout, DefaultRequestHeadersTimeout)
	setDuration(&c.Gateway.RequestBodyTimeout, DefaultRequestBodyTimeout)
	if c.Envoy.MaxHeapBytes == 0 {
		c.Envoy.MaxHeapBytes = DefaultMaxHeapBytes
	}
	if t := c.Gateway.TLS; t != nil && t.MinVersion == "" {
		t.MinVersion = TLSVersion12
	}
}

// validateEdge checks the client-facing bounds and every backend's TLS.
func (v *validator) validateEdge(c *Config) {
	g := c.Gateway
	if g.MaxConcurrentStreams < 0 || g.MaxConcurrentStreams > maxH2Streams {
		v.at("$.gateway.max_concurrent_streams", "max_concurrent_streams must be from 1 to %d", maxH2Streams)
	}
	if g.RequestHeadersTimeout < 0 {
		v.at("$.gateway.request_headers_timeout", "request_headers_timeout must be positive")
	}
	if g.RequestBodyTimeout < 0 {
		v.at("$.gateway.request_body_timeout", "request_body_timeout must be positive")
	} else if g.RequestBodyTimeout < g.RequestHeadersTimeout {
		v.at("$.gateway.request_body_timeout", "request_body_timeout (%v) must not be shorter than request_headers_timeout (%v): it bounds the whole request, headers included", g.RequestBodyTimeout, g.RequestHeadersTimeout)
	}
	if c.Envoy.MaxHeapBytes < minMaxHeapBytes {
		v.at("$.envoy.max_heap_bytes", "max_heap_bytes must be at least %d (64 MiB)", minMaxHeapBytes)
	}
	for i := range c.Backends {
		v.validateTLS(fmt.Sprintf("$.backends[%d].tls", i), &c.Backends[i])
	}
}

// validateTLS checks a backend's TLS settings and resolves the CA bundle
// its certificate is verified against.
func (v *validator) validateTLS(p string, b *Backend) {
	t := b.TLS
	if t == nil {
		return
	}
	switch {
	case t.InsecureSkipVerify && t.CAFile != "":
		v.at(p+".insecure_skip_verify", "backend %q: insecure_skip_verify and ca_file exclude each other; drop one", b.Name)
	case t.InsecureSkipVerify:
	case t.CAFile != "":
		if _, err := os.Stat(t.CAFile); err != nil {
			v.at(p+".ca_file", "backend %q: cannot read ca_file %q", b.Name, t.CAFile)
		}
	default:
		if t.systemCA = SystemCABundle(); t.systemCA == "" {
			v.at(p, "backend %q: no system CA bundle found (looked at $SSL_CERT_FILE and %s) to verify its certificate; set tls.ca_file", b.Name, systemCABundles[0])
		}
	}
	if t.SNI == "" && !t.InsecureSkipVerify && !sameHost(b.Endpoints) {
		v.at(p+".sni", "backend %q: its endpoints have different hosts and its certificate is checked against one name; set tls.sni", b.Name)
	}
}

// sameHost reports whether every endpoint has the same host.
func sameHost(eps []Endpoint) bool {
	var first string
	for i, ep := range eps {
		host, _, _ := net.SplitHostPort(ep.Address)
		if i == 0 {
			first = host
		} else if host != first {
			return false
		}
	}
	return true
}

// Warnings are the settings of a valid config that weaken its security,
// one sentence each; `streamgate validate` prints them and the servers
// log them at start.
func (c *Config) Warnings() []string {
	var ws []string
	for _, b := range c.Backends {
		if b.TLS != nil && b.TLS.InsecureSkipVerify {
			ws = append(ws, fmt.Sprintf("backend %q: tls.insecure_skip_verify is on: Envoy does not verify the backend's certificate, so whoever answers at its address receives its requests and credential", b.Name))
		}
	}
	return ws
}

// Package envoy renders the bootstrap that points Envoy at Streamgate's xDS
// server and finds and runs the Envoy binary for `streamgate run`.
package envoy

import (
	"bytes"
	_ "embed"
	"fmt"
	"net"
	"text/template"

	"github.com/streamgate/streamgate/config"
)

//go:embed bootstrap.yaml.tmpl
var bootstrapTemplate string

var bootstrapTmpl = template.Must(template.New("bootstrap").Parse(bootstrapTemplate))

// BootstrapOptions fill the bootstrap template.
type BootstrapOptions struct {
	NodeID string // xDS node id
	XDS    string // host:port of the ADS server
	Admin  string // host:port for Envoy's admin; keep it on loopback
	// MaxHeapBytes is the heap the overload manager measures pressure
	// against (0: config.DefaultMaxHeapBytes).
	MaxHeapBytes int64
}

type bootstrapData struct {
	NodeID             string
	XDSHost, AdminHost string
	XDSPort, AdminPort string
	MaxHeapBytes       int64
}

// Bootstrap renders a bootstrap in which everything but the xDS cluster
// itself comes over ADS, with an overload manager that bounds Envoy's heap.
func Bootstrap(o BootstrapOptions) ([]byte, error) {
	xh, xp, err := net.SplitHostPort(o.XDS)
	if err != nil {
		return nil, fmt.Errorf("cannot parse xDS address %q: %w", o.XDS, err)
	}
	ah, ap, err := net.SplitHostPort(o.Admin)
	if err != nil {
		return nil, fmt.Errorf("cannot parse admin address %q: %w", o.Admin, err)
	}
	heap := o.MaxHeapBytes
	if heap <= 0 {
		heap = config.DefaultMaxHeapBytes
	}
	var buf bytes.Buffer
	d := bootstrapData{NodeID: o.NodeID, XDSHost: xh, XDSPort: xp, AdminHost: ah, AdminPort: ap, MaxHeapBytes: heap}
	if err := bootstrapTmpl.Execute(&buf, d); err != nil {
		return nil, fmt.Errorf("cannot render bootstrap: %w", err)
	}
	return buf.Bytes(), nil
}

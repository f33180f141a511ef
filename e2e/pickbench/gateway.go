package pickbench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Arm is one way of spreading requests over the fleet.
type Arm struct {
	Name string `json:"name"`
	// Picking is the backend's picking block (YAML flow mapping, e.g.
	// "{metrics: vllm}"); empty leaves the backend on LEAST_REQUEST.
	Picking string `json:"picking,omitempty"`
}

// gateway is a running `streamgate run` (Envoy is its child).
type gateway struct {
	url, metricsURL string
	p               *proc
}

// gatewayConfig renders the Streamgate config of one arm: one OpenAI
// backend over the fleet's endpoints, one model, no auth or limits, so the
// arms differ only in how an endpoint is chosen.
func gatewayConfig(ports []string, endpoints []string, arm Arm, model string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# pickbench arm %s (generated)
gateway:
  listen: %s
  max_request_body_bytes: 8388608
  stream_idle_timeout: 5m
extproc:
  listen: %s
xds:
  listen: %s
envoy:
  admin: %s
metrics:
  listen: %s
backends:
  - name: gpu
    protocol: openai
    endpoints: [%s]
`, arm.Name, ports[0], ports[1], ports[2], ports[3], ports[4], strings.Join(endpoints, ", "))
	if arm.Picking != "" {
		fmt.Fprintf(&b, "    picking: %s\n", arm.Picking)
	}
	fmt.Fprintf(&b, "models:\n  - name: %s\n    backend: gpu\n", quote(model))
	return b.String()
}

// startGateway writes arm's config for endpoints and runs streamgate on it
// until it routes GET /v1/models.
func startGateway(ctx context.Context, sgBin, envoyBin, dir, tag string, endpoints []string, arm Arm, model string) (*gateway, error) {
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, tag+".yaml")
	if err := os.WriteFile(cfgPath, []byte(gatewayConfig(ports, endpoints, arm, model)), 0o600); err != nil {
		return nil, fmt.Errorf("cannot write config: %w", err)
	}
	p, err := startProc(tag+"-streamgate", sgBin, []string{"run", "-c", cfgPath, "--envoy-log-level", "warning"}, []string{"ENVOY_BIN=" + envoyBin}, dir)
	if err != nil {
		return nil, err
	}
	g := &gateway{url: "http://" + ports[0], metricsURL: "http://" + ports[4] + "/metrics", p: p}
	if err := p.waitHTTP(ctx, g.url+"/v1/models", http.Header{"Authorization": {"Bearer " + apiKey}}, 60*time.Second); err != nil {
		g.stop()
		return nil, err
	}
	return g, nil
}

func (g *gateway) stop() { g.p.stop(20 * time.Second) }

// apiKey is sent with every request (the generated config has no auth).
const apiKey = "sk-pickbench-0123456789"

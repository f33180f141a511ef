package examples_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	composecli "github.com/compose-spec/compose-go/v2/cli"
	composetypes "github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

func loadCompose(t *testing.T) *composetypes.Project {
	t.Helper()
	abs, err := filepath.Abs(root)
	require.NoError(t, err)
	opts, err := composecli.NewProjectOptions([]string{filepath.Join(abs, "docker-compose.yaml")},
		composecli.WithWorkingDirectory(abs),
		composecli.WithNormalization(true),
		composecli.WithResolvedPaths(true),
	)
	require.NoError(t, err)
	p, err := opts.LoadProject(context.Background())
	require.NoError(t, err, "docker-compose.yaml must load and normalize")
	return p
}

// hostPath maps a path inside a service's container to the bind-mounted
// file on the host.
func hostPath(t *testing.T, svc composetypes.ServiceConfig, inContainer string) string {
	t.Helper()
	for _, v := range svc.Volumes {
		if v.Type != composetypes.VolumeTypeBind {
			continue
		}
		if v.Target == inContainer {
			return v.Source
		}
		if rel, ok := strings.CutPrefix(inContainer, v.Target+"/"); ok {
			return filepath.Join(v.Source, rel)
		}
	}
	t.Fatalf("service %s mounts nothing at %s", svc.Name, inContainer)
	return ""
}

// flagValue returns the value after flag in args.
func flagValue(t *testing.T, args []string, flag string) string {
	t.Helper()
	i := slices.Index(args, flag)
	require.True(t, i >= 0 && i+1 < len(args), "no %s in %v", flag, args)
	return args[i+1]
}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t)
	assert.ElementsMatch(t, []string{"streamgate", "fakellm", "envoy", "redis", "nats", "prometheus", "grafana"}, p.ServiceNames())

	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^ENVOY_VERSION \?= (\S+)$`).FindSubmatch(makefile)
	require.NotNil(t, m, "Makefile pins ENVOY_VERSION")
	assert.Equal(t, "envoyproxy/envoy:v"+string(m[1]), p.Services["envoy"].Image, "compose runs the Envoy the tests run")

	for _, name := range []string{"streamgate", "fakellm"} {
		s := p.Services[name]
		require.NotNil(t, s.Build, "%s builds from the Dockerfile", name)
		assert.FileExists(t, filepath.Join(s.Build.Context, s.Build.Dockerfile))
		assert.Equal(t, "65532:65532", s.User, "%s runs as non-root", name)
		assert.True(t, s.ReadOnly, "%s has a read-only root filesystem", name)
	}
	assert.Equal(t, []string{"/usr/local/bin/fakellm"}, []string(p.Services["fakellm"].Entrypoint))
	// SIGTERM drains for up to drain_timeout; compose must not SIGKILL sooner.
	require.NotNil(t, p.Services["streamgate"].StopGracePeriod)
}

// TestComposeMountsExist: every bind mount's source exists in the repository.
func TestComposeMountsExist(t *testing.T) {
	p := loadCompose(t)
	abs, err := filepath.Abs(root)
	require.NoError(t, err)
	n := 0
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != composetypes.VolumeTypeBind {
				continue
			}
			n++
			_, err := os.Stat(v.Source)
			assert.NoError(t, err, "service %s mounts %s", s.Name, v.Source)
			assert.True(t, strings.HasPrefix(v.Source, abs+string(filepath.Separator)), "service %s mounts %s from outside the repository", s.Name, v.Source)
			assert.True(t, v.ReadOnly, "service %s mounts %s writable", s.Name, v.Source)
		}
	}
	assert.GreaterOrEqual(t, n, 5)
}

// TestComposeConfigsValidate: the configs compose hands Envoy and
// Streamgate pass `envoy --mode validate` and `streamgate validate`.
func TestComposeConfigsValidate(t *testing.T) {
	p := loadCompose(t)
	envoySvc := p.Services["envoy"]
	envoyCfg := hostPath(t, envoySvc, flagValue(t, envoySvc.Command, "-c"))
	// The STRICT_DNS xDS cluster names the compose service; validate mode
	// does not resolve it, so the file validates outside compose.
	envoyValidate(t, envoyCfg)

	sg := p.Services["streamgate"]
	sgCfg := hostPath(t, sg, flagValue(t, sg.Command, "-c"))
	streamgateValidate(t, sgCfg)

	// Envoy's bootstrap dials the streamgate service's xDS port, and
	// Streamgate's config points Envoy at its ext_proc port, by service name.
	raw, err := os.ReadFile(sgCfg)
	require.NoError(t, err)
	var sgc struct {
		ExtProc  struct{ Listen, Address string } `json:"extproc"`
		XDS      struct{ Listen string }          `json:"xds"`
		Metrics  struct{ Listen string }          `json:"metrics"`
		Backends []struct {
			Endpoints []string `json:"endpoints"`
		} `json:"backends"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &sgc))
	assert.Empty(t, sgc.ExtProc.Address, "Envoy dials ext_proc at its loopback listen address")
	bootstrap, err := os.ReadFile(envoyCfg)
	require.NoError(t, err)
	_, xdsPort, _ := net.SplitHostPort(sgc.XDS.Listen)
	assert.Contains(t, string(bootstrap), "socket_address: { address: 127.0.0.1, port_value: "+xdsPort+" }")
	for _, b := range sgc.Backends {
		for _, ep := range b.Endpoints {
			assertServicePort(t, p, ep)
		}
	}
}

// assertServicePort checks that host:port names a compose service exposing port.
func assertServicePort(t *testing.T, p *composetypes.Project, hostPort string) {
	t.Helper()
	host, port, err := net.SplitHostPort(hostPort)
	require.NoError(t, err)
	s, ok := p.Services[host]
	require.True(t, ok, "%s: no compose service %q", hostPort, host)
	ports := slices.Clone([]string(s.Expose))
	for _, pc := range s.Ports {
		ports = append(ports, strconv.FormatUint(uint64(pc.Target), 10))
	}
	assert.Contains(t, ports, port, "%s: service %s does not expose port %s", hostPort, host, port)
}

// TestComposePrometheus: Prometheus scrapes Streamgate's metrics port and
// Envoy's admin /stats/prometheus, by service name.
func TestComposePrometheus(t *testing.T) {
	p := loadCompose(t)
	prom := p.Services["prometheus"]
	raw, err := os.ReadFile(hostPath(t, prom, "/etc/prometheus/prometheus.yml"))
	require.NoError(t, err)
	var pc struct {
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			MetricsPath   string `json:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &pc))
	jobs := map[string]string{}
	for _, sc := range pc.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				assertServicePort(t, p, target)
				host, _, _ := net.SplitHostPort(target)
				jobs[host] = sc.MetricsPath
			}
		}
	}
	assert.Equal(t, map[string]string{"envoy": "/stats/prometheus"}, jobs, "both scraped through Envoy's metrics listener")
	paths := map[string]bool{}
	for _, sc := range pc.ScrapeConfigs {
		paths[sc.MetricsPath] = true
	}
	assert.Equal(t, map[string]bool{"": true, "/stats/prometheus": true}, paths, "/metrics (Streamgate) and /stats/prometheus (Envoy)")
}

// TestComposeGrafana: Grafana gets the provisioned datasource and the one
// dashboard file, whose panels all query that datasource.
func TestComposeGrafana(t *testing.T) {
	p := loadCompose(t)
	g := p.Services["grafana"]
	raw, err := os.ReadFile(hostPath(t, g, "/etc/grafana/provisioning/datasources/prometheus.yaml"))
	require.NoError(t, err)
	var ds struct {
		Datasources []struct{ UID, URL string } `json:"datasources"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &ds))
	require.Len(t, ds.Datasources, 1)
	assertServicePort(t, p, strings.TrimPrefix(ds.Datasources[0].URL, "http://"))

	raw, err = os.ReadFile(hostPath(t, g, "/etc/grafana/provisioning/dashboards/streamgate.yaml"))
	require.NoError(t, err)
	var prov struct {
		Providers []struct {
			Options struct{ Path string } `json:"options"`
		} `json:"providers"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &prov))
	require.Len(t, prov.Providers, 1)
	dash := hostPath(t, g, prov.Providers[0].Options.Path+"/streamgate.json")
	require.Equal(t, filepath.Join(mustAbs(t, root), "examples/grafana/dashboards/streamgate.json"), dash)
	d := loadDashboard(t)
	for _, pn := range d.Panels {
		assert.Equal(t, ds.Datasources[0].UID, pn.Datasource.UID, "panel %q", pn.Title)
	}
}

// dashboard is the part of the Grafana dashboard JSON the tests read.
type dashboard struct {
	Panels []struct {
		Title      string `json:"title"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "examples/grafana/dashboards/streamgate.json"))
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(raw, &d))
	require.NotEmpty(t, d.Panels)
	return d
}

// TestDockerfile: multi-stage, a static binary, a distroless (or scratch)
// final stage and a non-root user.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	require.NoError(t, err)
	from := regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(string(raw), -1)
	require.GreaterOrEqual(t, len(from), 2, "multi-stage")
	final := from[len(from)-1][1]
	assert.True(t, strings.HasPrefix(final, "gcr.io/distroless/static") || final == "scratch", "final stage %s", final)
	assert.Contains(t, string(raw), "CGO_ENABLED=0 go build")
	users := regexp.MustCompile(`(?m)^USER (\S+)`).FindAllStringSubmatch(string(raw), -1)
	require.NotEmpty(t, users)
	u := users[len(users)-1][1]
	assert.NotContains(t, []string{"root", "0", "0:0"}, u)
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	require.NoError(t, err)
	assert.Contains(t, strings.Fields(string(ignore)), ".venv", "the build context must not carry the venv")
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	require.NoError(t, err)
	return abs
}

// TestComposeControlPortsPrivate: issue 23 finding 9. Streamgate runs in
// Envoy's network namespace with ext_proc, xDS and metrics on loopback,
// exposes and publishes nothing; Envoy's admin API is on loopback; the
// host sees the gateway and loopback-published dashboards only.
func TestComposeControlPortsPrivate(t *testing.T) {
	p := loadCompose(t)
	sg := p.Services["streamgate"]
	assert.Equal(t, "service:envoy", sg.NetworkMode)
	assert.Empty(t, sg.Expose)
	assert.Empty(t, sg.Ports)

	raw, err := os.ReadFile(hostPath(t, sg, flagValue(t, sg.Command, "-c")))
	require.NoError(t, err)
	var sgc struct {
		ExtProc struct{ Listen string } `json:"extproc"`
		XDS     struct{ Listen string } `json:"xds"`
		Metrics struct{ Listen string } `json:"metrics"`
		Envoy   struct{ Admin string }  `json:"envoy"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &sgc))
	for name, addr := range map[string]string{"extproc": sgc.ExtProc.Listen, "xds": sgc.XDS.Listen, "metrics": sgc.Metrics.Listen, "envoy.admin": sgc.Envoy.Admin} {
		assert.True(t, loopback(t, addr), "%s listens on %s", name, addr)
	}

	envoySvc := p.Services["envoy"]
	raw, err = os.ReadFile(hostPath(t, envoySvc, flagValue(t, envoySvc.Command, "-c")))
	require.NoError(t, err)
	var boot struct {
		Admin struct {
			Address struct {
				SocketAddress struct {
					Address   string `json:"address"`
					PortValue int    `json:"port_value"`
				} `json:"socket_address"`
			} `json:"address"`
		} `json:"admin"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &boot))
	assert.True(t, net.ParseIP(boot.Admin.Address.SocketAddress.Address).IsLoopback(), "Envoy admin on %s", boot.Admin.Address.SocketAddress.Address)
	private := []string{port2(t, sgc.ExtProc.Listen), port2(t, sgc.XDS.Listen), port2(t, sgc.Metrics.Listen), strconv.Itoa(boot.Admin.Address.SocketAddress.PortValue)}

	for _, s := range p.Services {
		for _, e := range s.Expose {
			assert.NotContains(t, private, e, "service %s exposes control port %s", s.Name, e)
		}
		for _, pc := range s.Ports {
			assert.NotContains(t, private, strconv.FormatUint(uint64(pc.Target), 10), "service %s publishes control port %d", s.Name, pc.Target)
			if s.Name != "envoy" {
				assert.Equal(t, "127.0.0.1", pc.HostIP, "service %s publishes %d beyond the host's loopback", s.Name, pc.Target)
			}
		}
	}
}

// port2 returns the port of host:port.
func port2(t *testing.T, hostPort string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(hostPort)
	require.NoError(t, err)
	return p
}

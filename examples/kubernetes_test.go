package examples_test

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/streamgate/streamgate/config"
)

const k8sDir = root + "/examples/kubernetes"

// kustomization is the part of kustomization.yaml the example uses; strict
// decoding makes any other field fail.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Labels     []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
	Resources []string `json:"resources"`
	Images    []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

func loadKubernetes(t *testing.T) (kustomization, []object) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(k8sDir, "kustomization.yaml"))
	require.NoError(t, err)
	var k kustomization
	require.NoError(t, yaml.UnmarshalStrict(raw, &k))
	require.Equal(t, "Kustomization", k.Kind)
	files := make([]string, 0, len(k.Resources))
	for _, r := range k.Resources {
		files = append(files, filepath.Join(k8sDir, r))
	}
	// Every manifest in the folder is listed in the kustomization.
	all, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	require.NoError(t, err)
	for _, f := range all {
		if filepath.Base(f) != "kustomization.yaml" {
			assert.Contains(t, k.Resources, filepath.Base(f), "%s is not in kustomization.yaml", f)
		}
	}
	return k, decodeManifests(t, typedKinds, files...)
}

func TestKubernetesStreamgate(t *testing.T) {
	k, objs := loadKubernetes(t)
	d := find[*appsv1.Deployment](t, objs, "Deployment", "streamgate")
	pod := d.Spec.Template.Spec
	require.Len(t, pod.Containers, 2, "Streamgate and Envoy share the pod")
	c := container(t, pod, "streamgate")

	// The image is the one kustomize rewrites.
	assert.True(t, slices.ContainsFunc(k.Images, func(i struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	}) bool {
		return i.Name == c.Image
	}), "image %s is not set by kustomization images", c.Image)

	// Non-root, read-only root filesystem, no privilege escalation.
	require.NotNil(t, pod.SecurityContext)
	assert.True(t, *pod.SecurityContext.RunAsNonRoot)
	require.NotNil(t, c.SecurityContext)
	assert.NotZero(t, *c.SecurityContext.RunAsUser)
	assert.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)
	assert.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	assert.Contains(t, c.SecurityContext.Capabilities.Drop, corev1.Capability("ALL"))
	assert.False(t, c.Resources.Requests.Cpu().IsZero())
	assert.False(t, c.Resources.Requests.Memory().IsZero())
	assert.False(t, c.Resources.Limits.Memory().IsZero())

	// The config file the container reads comes from the ConfigMap.
	cfgPath := flagValue(t, c.Args, "-c")
	require.Len(t, c.VolumeMounts, 1)
	m := c.VolumeMounts[0]
	require.Equal(t, filepath.Join(m.MountPath, filepath.Base(cfgPath)), cfgPath)
	vol := pod.Volumes[slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })]
	cm := find[*corev1.ConfigMap](t, objs, "ConfigMap", vol.ConfigMap.Name)
	src, ok := cm.Data[filepath.Base(cfgPath)]
	require.True(t, ok, "ConfigMap %s has no %s", cm.Name, filepath.Base(cfgPath))
	file := filepath.Join(t.TempDir(), "streamgate.yaml")
	require.NoError(t, os.WriteFile(file, []byte(src), 0o600))
	streamgateValidate(t, file)
	cfg, err := config.Load(file)
	require.NoError(t, err)

	// Probes hit /healthz and /readyz on the metrics port the config listens on.
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	assert.Equal(t, port(t, cfg.Metrics.Listen), ports["http-metrics"])
	require.NotNil(t, c.ReadinessProbe)
	require.NotNil(t, c.LivenessProbe)
	assert.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	assert.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
		if p != nil {
			assert.Equal(t, "http-metrics", p.HTTPGet.Port.String())
		}
	}
	// The drain fits in the grace period, after the preStop pause.
	grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	var pause time.Duration
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		pause = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	assert.Less(t, cfg.Gateway.DrainTimeout+pause, grace)

	// Envoy, in the same pod, reaches ext_proc and xDS on loopback.
	for name, addr := range map[string]string{"extproc.listen": cfg.ExtProc.Listen, "extproc (as Envoy dials it)": cfg.ExtProc.EnvoyAddress(), "xds.listen": cfg.XDS.Listen} {
		assert.True(t, loopback(t, addr), "%s is %s, not loopback", name, addr)
	}
}

func TestKubernetesServicesAndBudgets(t *testing.T) {
	_, objs := loadKubernetes(t)
	deployments := map[string]*appsv1.Deployment{}
	for _, o := range objs {
		if d, ok := o.obj.(*appsv1.Deployment); ok {
			deployments[o.name] = d
		}
	}
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *corev1.Service:
			d := deployments[v.Spec.Selector["app.kubernetes.io/name"]]
			require.NotNil(t, d, "Service %s selects no Deployment", v.Name)
			assertSelects(t, v.Spec.Selector, d)
			for _, sp := range v.Spec.Ports {
				// targetPort names a container port of the selected pods.
				found := false
				for _, c := range d.Spec.Template.Spec.Containers {
					for _, cp := range c.Ports {
						found = found || cp.Name == sp.TargetPort.String()
					}
				}
				assert.True(t, found, "Service %s port %s targets %s, which the pods do not have", v.Name, sp.Name, sp.TargetPort.String())
				if sp.AppProtocol != nil && *sp.AppProtocol == "grpc" {
					assert.True(t, strings.HasPrefix(sp.Name, "grpc-"), "gRPC port %s must be named grpc-* for protocol detection", sp.Name)
				}
			}
		case *policyv1.PodDisruptionBudget:
			sel, err := metav1LabelSelector(v)
			require.NoError(t, err)
			n := 0
			for _, d := range deployments {
				if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
					n++
					assert.Less(t, v.Spec.MinAvailable.IntValue(), int(*d.Spec.Replicas), "PDB %s would block every eviction", v.Name)
				}
			}
			assert.Equal(t, 1, n, "PDB %s selects one Deployment", v.Name)
		}
	}
	for name := range deployments {
		assert.True(t, slices.ContainsFunc(objs, func(o object) bool { return o.kind == "PodDisruptionBudget" && o.name == name }), "Deployment %s has no PodDisruptionBudget", name)
	}
}

func TestKubernetesEnvoy(t *testing.T) {
	_, objs := loadKubernetes(t)
	d := find[*appsv1.Deployment](t, objs, "Deployment", "streamgate")
	pod := d.Spec.Template.Spec
	c := container(t, pod, "envoy")
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	require.NoError(t, err)
	v := regexp.MustCompile(`(?m)^ENVOY_VERSION \?= (\S+)$`).FindSubmatch(makefile)
	require.NotNil(t, v)
	assert.Equal(t, "envoyproxy/envoy:v"+string(v[1]), c.Image)
	assert.True(t, *pod.SecurityContext.RunAsNonRoot)
	assert.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)

	boot := envoyBootstrap(t, objs, pod, c)
	envoyValidateBytes(t, []byte(boot))

	// The bootstrap dials the xDS port Streamgate listens on, on loopback.
	cfg := kubernetesConfig(t, objs)
	assert.Contains(t, boot, "address: 127.0.0.1, port_value: "+strconv.Itoa(int(port(t, cfg.XDS.Listen))))
	// The probes use the stats listener the bootstrap declares.
	assert.Contains(t, boot, "port_value: "+strconv.Itoa(int(c.Ports[slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == c.ReadinessProbe.HTTPGet.Port.String() })].ContainerPort)))
}

// TestKubernetesControlPortsPrivate: issue 23 finding 9. ext_proc (a
// credential oracle and the access log sink), xDS and Envoy's admin API
// listen on the pod's loopback; no container port or Service exposes them;
// the Service exposes the gateway only; a NetworkPolicy limits the rest.
func TestKubernetesControlPortsPrivate(t *testing.T) {
	_, objs := loadKubernetes(t)
	d := find[*appsv1.Deployment](t, objs, "Deployment", "streamgate")
	pod := d.Spec.Template.Spec
	cfg := kubernetesConfig(t, objs)
	for name, addr := range map[string]string{"extproc": cfg.ExtProc.Listen, "xds": cfg.XDS.Listen, "envoy.admin": cfg.Envoy.Admin} {
		assert.True(t, loopback(t, addr), "%s listens on %s", name, addr)
	}
	private := []int32{port(t, cfg.ExtProc.Listen), port(t, cfg.XDS.Listen)}

	// Envoy's admin API: loopback in the bootstrap.
	var boot struct {
		Admin struct {
			Address struct {
				SocketAddress struct {
					Address   string `json:"address"`
					PortValue int32  `json:"port_value"`
				} `json:"socket_address"`
			} `json:"address"`
		} `json:"admin"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(envoyBootstrap(t, objs, pod, container(t, pod, "envoy"))), &boot))
	sa := boot.Admin.Address.SocketAddress
	assert.True(t, net.ParseIP(sa.Address).IsLoopback(), "Envoy admin listens on %s", sa.Address)
	private = append(private, sa.PortValue)

	for _, c := range pod.Containers {
		for _, p := range c.Ports {
			assert.NotContains(t, private, p.ContainerPort, "container %s declares control port %s", c.Name, p.Name)
		}
	}
	policed := map[string]bool{}
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *corev1.Service:
			for _, sp := range v.Spec.Ports {
				assert.Equal(t, "http", sp.TargetPort.String(), "Service %s exposes %s", v.Name, sp.Name)
			}
		case *networkingv1.NetworkPolicy:
			if !labels.SelectorFromSet(v.Spec.PodSelector.MatchLabels).Matches(labels.Set(d.Spec.Template.Labels)) {
				continue
			}
			assert.Contains(t, v.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)
			for _, r := range v.Spec.Ingress {
				for _, p := range r.Ports {
					if p.Port.String() != "http" {
						assert.NotEmpty(t, r.From, "NetworkPolicy %s opens %s to everyone", v.Name, p.Port.String())
					}
					policed[p.Port.String()] = true
				}
				assert.NotEmpty(t, r.Ports, "NetworkPolicy %s has a rule for every port", v.Name)
			}
		}
	}
	for _, c := range pod.Containers {
		for _, p := range c.Ports {
			assert.True(t, policed[p.Name], "no NetworkPolicy rule names container port %s", p.Name)
		}
	}
}

const remoteExtProcDir = root + "/examples/remote-extproc"

// loadRemoteExtProc decodes the manifests that open ext_proc to gateway
// proxies outside the pod (Istio, Envoy Gateway).
func loadRemoteExtProc(t *testing.T) []object {
	t.Helper()
	return decodeManifests(t, typedKinds, filepath.Join(remoteExtProcDir, "extproc.yaml"))
}

// TestRemoteExtProcRestricted: issue 23 finding 9. Where ext_proc must be
// reachable from another pod, its Service targets the port the Istio
// config listens on and a NetworkPolicy admits named sources only.
func TestRemoteExtProcRestricted(t *testing.T) {
	objs := loadRemoteExtProc(t)
	cfg, err := config.Load(filepath.Join(istioDir, "streamgate.yaml"))
	require.NoError(t, err)
	svc := find[*corev1.Service](t, objs, "Service", "streamgate-extproc")
	require.Len(t, svc.Spec.Ports, 1)
	assert.Equal(t, port(t, cfg.ExtProc.Listen), svc.Spec.Ports[0].TargetPort.IntVal)
	assert.NotEqual(t, corev1.ServiceTypeLoadBalancer, svc.Spec.Type)
	np := find[*networkingv1.NetworkPolicy](t, objs, "NetworkPolicy", "streamgate-extproc")
	require.NotEmpty(t, np.Spec.Ingress)
	for _, r := range np.Spec.Ingress {
		assert.NotEmpty(t, r.From, "ext_proc is open to every pod")
		for _, p := range r.Ports {
			assert.Equal(t, svc.Spec.Ports[0].TargetPort.IntVal, p.Port.IntVal)
		}
	}
}

// container returns the pod's container named name.
func container(t *testing.T, pod corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	i := slices.IndexFunc(pod.Containers, func(c corev1.Container) bool { return c.Name == name })
	require.GreaterOrEqual(t, i, 0, "no container %s", name)
	return pod.Containers[i]
}

// envoyBootstrap returns the bootstrap file the Envoy container c reads.
func envoyBootstrap(t *testing.T, objs []object, pod corev1.PodSpec, c corev1.Container) string {
	t.Helper()
	bootPath := flagValue(t, c.Args, "-c")
	m := c.VolumeMounts[0]
	require.Equal(t, filepath.Join(m.MountPath, filepath.Base(bootPath)), bootPath)
	vol := pod.Volumes[slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })]
	cm := find[*corev1.ConfigMap](t, objs, "ConfigMap", vol.ConfigMap.Name)
	boot := cm.Data[filepath.Base(bootPath)]
	require.NotEmpty(t, boot)
	return boot
}

// kubernetesConfig loads the streamgate.yaml of the ConfigMap.
func kubernetesConfig(t *testing.T, objs []object) *config.Config {
	t.Helper()
	cm := find[*corev1.ConfigMap](t, objs, "ConfigMap", "streamgate-config")
	file := filepath.Join(t.TempDir(), "streamgate.yaml")
	require.NoError(t, os.WriteFile(file, []byte(cm.Data["streamgate.yaml"]), 0o600))
	cfg, err := config.Load(file)
	require.NoError(t, err)
	return cfg
}

// loopback reports whether addr (host:port or unix:path) is reachable from
// this host only.
func loopback(t *testing.T, addr string) bool {
	t.Helper()
	return config.Loopback(addr)
}

func port(t *testing.T, hostPort string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(hostPort)
	require.NoError(t, err)
	n, err := strconv.Atoi(p)
	require.NoError(t, err)
	return int32(n)
}

func assertServicePortName(t *testing.T, svc *corev1.Service, p, prefix string) {
	t.Helper()
	for _, sp := range svc.Spec.Ports {
		if strconv.Itoa(int(sp.Port)) == p {
			assert.True(t, strings.HasPrefix(sp.Name, prefix), "Service %s port %s is named %q", svc.Name, p, sp.Name)
			return
		}
	}
	t.Errorf("Service %s has no port %s", svc.Name, p)
}

func assertSelects(t *testing.T, selector map[string]string, d *appsv1.Deployment) {
	t.Helper()
	assert.True(t, labels.SelectorFromSet(selector).Matches(labels.Set(d.Spec.Template.Labels)), "selector %v does not match Deployment %s", selector, d.Name)
}

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
	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]

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
	assert.NotZero(t, *pod.SecurityContext.RunAsUser)
	require.NotNil(t, c.SecurityContext)
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
	assert.Equal(t, port(t, cfg.ExtProc.Listen), ports["grpc-extproc"])
	assert.Equal(t, port(t, cfg.XDS.Listen), ports["grpc-xds"])
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

	// Envoy reaches ext_proc through a headless Service by its cluster DNS
	// name, on a port named for gRPC protocol detection.
	host, p, err := net.SplitHostPort(cfg.ExtProc.EnvoyAddress())
	require.NoError(t, err)
	svcName, ok := strings.CutSuffix(host, "."+k.Namespace+".svc.cluster.local")
	require.True(t, ok, "extproc.address %s is not a Service of namespace %s", host, k.Namespace)
	svc := find[*corev1.Service](t, objs, "Service", svcName)
	assert.Equal(t, corev1.ClusterIPNone, svc.Spec.ClusterIP, "ext_proc Service is headless")
	assertServicePortName(t, svc, p, "grpc-")
	assertSelects(t, svc.Spec.Selector, d)
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
				for _, cp := range d.Spec.Template.Spec.Containers[0].Ports {
					found = found || cp.Name == sp.TargetPort.String()
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
	d := find[*appsv1.Deployment](t, objs, "Deployment", "envoy")
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	require.NoError(t, err)
	v := regexp.MustCompile(`(?m)^ENVOY_VERSION \?= (\S+)$`).FindSubmatch(makefile)
	require.NotNil(t, v)
	assert.Equal(t, "envoyproxy/envoy:v"+string(v[1]), c.Image)
	assert.True(t, *pod.SecurityContext.RunAsNonRoot)
	assert.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)

	bootPath := flagValue(t, c.Args, "-c")
	m := c.VolumeMounts[0]
	require.Equal(t, filepath.Join(m.MountPath, filepath.Base(bootPath)), bootPath)
	vol := pod.Volumes[slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })]
	cm := find[*corev1.ConfigMap](t, objs, "ConfigMap", vol.ConfigMap.Name)
	boot := cm.Data[filepath.Base(bootPath)]
	require.NotEmpty(t, boot)
	envoyValidateBytes(t, []byte(boot))

	// The bootstrap dials the streamgate Service's xDS port.
	svc := find[*corev1.Service](t, objs, "Service", "streamgate")
	xds := svc.Spec.Ports[slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "grpc-xds" })]
	assert.Contains(t, boot, "address: streamgate.streamgate.svc.cluster.local, port_value: "+strconv.Itoa(int(xds.Port)))
	// The probes use the admin port the bootstrap listens on.
	assert.Contains(t, boot, "port_value: "+strconv.Itoa(int(c.Ports[slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == c.ReadinessProbe.HTTPGet.Port.String() })].ContainerPort)))
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

package examples_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/contract"
)

const egDir = root + "/examples/envoy-gateway"

// The Envoy Gateway resources the example uses. Envoy Gateway's Go module
// would pull in a different go-control-plane than Streamgate builds with,
// so these structs mirror the subset of gateway.envoyproxy.io/v1alpha1 the
// example sets (field names as in Envoy Gateway v1.9's API reference);
// strict decoding makes any other field, or a misspelt one, fail.
type envoyExtensionPolicy struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		TargetRefs []gwapiv1.LocalPolicyTargetReferenceWithSectionName `json:"targetRefs"`
		ExtProc    []struct {
			BackendRefs    []gwapiv1.BackendObjectReference `json:"backendRefs"`
			FailOpen       *bool                            `json:"failOpen"`
			MessageTimeout *gwapiv1.Duration                `json:"messageTimeout"`
			ProcessingMode *struct {
				Request *struct {
					Body *string `json:"body"`
				} `json:"request"`
				Response *struct {
					Body *string `json:"body"`
				} `json:"response"`
				AllowModeOverride bool `json:"allowModeOverride"`
			} `json:"processingMode"`
		} `json:"extProc"`
	} `json:"spec"`
}

type httpRouteFilter struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		DirectResponse *struct {
			StatusCode  *int    `json:"statusCode"`
			ContentType *string `json:"contentType"`
			Body        *struct {
				Type   string  `json:"type"`
				Inline *string `json:"inline"`
			} `json:"body"`
		} `json:"directResponse"`
	} `json:"spec"`
}

type egBackend struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		Fallback  *bool `json:"fallback"`
		Endpoints []struct {
			FQDN *struct {
				Hostname string `json:"hostname"`
				Port     int    `json:"port"`
			} `json:"fqdn"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type backendTrafficPolicy struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		TargetRefs  []gwapiv1.LocalPolicyTargetReferenceWithSectionName `json:"targetRefs"`
		HealthCheck *struct {
			Passive *struct {
				Consecutive5XxErrors           *int              `json:"consecutive5XxErrors"`
				ConsecutiveLocalOriginFailures *int              `json:"consecutiveLocalOriginFailures"`
				Interval                       *gwapiv1.Duration `json:"interval"`
				BaseEjectionTime               *gwapiv1.Duration `json:"baseEjectionTime"`
				MaxEjectionPercent             *int              `json:"maxEjectionPercent"`
			} `json:"passive"`
		} `json:"healthCheck"`
		Retry *struct {
			NumRetries *int `json:"numRetries"`
			RetryOn    *struct {
				Triggers []string `json:"triggers"`
			} `json:"retryOn"`
			PerRetry *struct {
				BackOff *struct {
					BaseInterval *gwapiv1.Duration `json:"baseInterval"`
				} `json:"backOff"`
			} `json:"perRetry"`
		} `json:"retry"`
	} `json:"spec"`
}

var egKinds = map[string]func() any{
	"gateway.networking.k8s.io/v1/Gateway":                func() any { return &gwapiv1.Gateway{} },
	"gateway.networking.k8s.io/v1/HTTPRoute":              func() any { return &gwapiv1.HTTPRoute{} },
	"gateway.networking.k8s.io/v1beta1/ReferenceGrant":    func() any { return &gwapiv1beta1.ReferenceGrant{} },
	"gateway.envoyproxy.io/v1alpha1/EnvoyExtensionPolicy": func() any { return &envoyExtensionPolicy{} },
	"gateway.envoyproxy.io/v1alpha1/HTTPRouteFilter":      func() any { return &httpRouteFilter{} },
	"gateway.envoyproxy.io/v1alpha1/Backend":              func() any { return &egBackend{} },
	"gateway.envoyproxy.io/v1alpha1/BackendTrafficPolicy": func() any { return &backendTrafficPolicy{} },
}

func loadEnvoyGateway(t *testing.T) []object {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(egDir, "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	return decodeManifests(t, egKinds, files...)
}

// TestEnvoyGatewayExtProc: the EnvoyExtensionPolicy attaches Streamgate's
// ext_proc Service to the model HTTPRoute with the settings of
// envoy/dropin/http_filter.yaml.
func TestEnvoyGatewayExtProc(t *testing.T) {
	objs := loadEnvoyGateway(t)
	p := find[*envoyExtensionPolicy](t, objs, "EnvoyExtensionPolicy", "streamgate")
	require.Len(t, p.Spec.TargetRefs, 1)
	ref := p.Spec.TargetRefs[0]
	assert.Equal(t, "HTTPRoute", string(ref.Kind))
	assert.Equal(t, gwapiv1.GroupName, string(ref.Group))
	route := find[*gwapiv1.HTTPRoute](t, objs, "HTTPRoute", string(ref.Name))
	assert.Equal(t, p.Metadata.Namespace, route.Namespace, "a policy targets routes of its own namespace")

	require.Len(t, p.Spec.ExtProc, 1)
	ep := p.Spec.ExtProc[0]
	var want extprocv3.ExternalProcessor
	require.NoError(t, dropInFilter(t).GetTypedConfig().UnmarshalTo(&want))

	require.NotNil(t, ep.FailOpen)
	assert.Equal(t, want.GetFailureModeAllow(), *ep.FailOpen)
	require.NotNil(t, ep.MessageTimeout)
	d, err := time.ParseDuration(string(*ep.MessageTimeout))
	require.NoError(t, err)
	assert.Equal(t, want.GetMessageTimeout().AsDuration(), d)
	require.NotNil(t, ep.ProcessingMode)
	require.NotNil(t, ep.ProcessingMode.Request, "request headers are sent")
	require.NotNil(t, ep.ProcessingMode.Request.Body)
	assert.Equal(t, "Buffered", *ep.ProcessingMode.Request.Body)
	assert.Equal(t, "BUFFERED", want.GetProcessingMode().GetRequestBodyMode().String())
	assert.Nil(t, ep.ProcessingMode.Response, "responses are not sent to Streamgate")
	assert.Equal(t, "SKIP", want.GetProcessingMode().GetResponseHeaderMode().String())
	assert.Equal(t, want.GetAllowModeOverride(), ep.ProcessingMode.AllowModeOverride)

	// The backend is the remote ext_proc Service's gRPC port.
	require.Len(t, ep.BackendRefs, 1)
	br := ep.BackendRefs[0]
	svc := find[*corev1.Service](t, loadRemoteExtProc(t), "Service", string(br.Name))
	require.NotNil(t, br.Port)
	assertServicePortName(t, svc, strconv.Itoa(int(*br.Port)), "grpc-")
}

// TestEnvoyGatewayRouting: each backend of the Kubernetes streamgate.yaml
// has a rule matching its x-streamgate-backend value and sending to its
// Service, cross-namespace references are granted, and a catch-all rule
// exists so the route's filters run before Streamgate sets the header.
func TestEnvoyGatewayRouting(t *testing.T) {
	objs := loadEnvoyGateway(t)
	_, k8s := loadKubernetes(t)
	cm := find[*corev1.ConfigMap](t, k8s, "ConfigMap", "streamgate-config")
	file := filepath.Join(t.TempDir(), "streamgate.yaml")
	require.NoError(t, os.WriteFile(file, []byte(cm.Data["streamgate.yaml"]), 0o600))
	cfg, err := config.Load(file)
	require.NoError(t, err)

	route := find[*gwapiv1.HTTPRoute](t, objs, "HTTPRoute", "streamgate-models")
	gw := find[*gwapiv1.Gateway](t, objs, "Gateway", string(route.Spec.ParentRefs[0].Name))
	require.NotNil(t, gw.Spec.Listeners[0].Hostname)
	assert.Contains(t, route.Spec.Hostnames, *gw.Spec.Listeners[0].Hostname)

	routed := map[string]bool{}
	catchAll := false
	for _, r := range route.Spec.Rules {
		require.Len(t, r.Matches, 1)
		if len(r.Matches[0].Headers) == 0 {
			catchAll = true
			require.Len(t, r.Filters, 1)
			ext := r.Filters[0].ExtensionRef
			require.NotNil(t, ext)
			f := find[*httpRouteFilter](t, objs, string(ext.Kind), string(ext.Name))
			require.NotNil(t, f.Spec.DirectResponse)
			continue
		}
		h := r.Matches[0].Headers[0]
		require.Equal(t, "x-streamgate-backend", string(h.Name))
		if strings.HasPrefix(h.Value, contract.FailoverPrefix) {
			continue // TestEnvoyGatewayFailover
		}
		b := cfg.Backend(h.Value)
		require.NotNil(t, b, "rule matches backend %q, which streamgate.yaml does not define", h.Value)
		routed[b.Name] = true
		require.Len(t, r.BackendRefs, 1)
		ref := r.BackendRefs[0]
		ns := route.Namespace
		if ref.Namespace != nil {
			ns = string(*ref.Namespace)
		}
		assert.Equal(t, string(ref.Name)+"."+ns+".svc.cluster.local:"+strconv.Itoa(int(*ref.Port)), b.Endpoints[0].Address)
		require.NotNil(t, r.Timeouts)
		assert.Equal(t, gwapiv1.Duration("0s"), *r.Timeouts.Request, "token streams need no request timeout")
		if ns != route.Namespace {
			granted := false
			for _, o := range objs {
				if g, ok := o.obj.(*gwapiv1beta1.ReferenceGrant); ok && g.Namespace == ns {
					for _, to := range g.Spec.To {
						granted = granted || (string(to.Kind) == "Service" && to.Name != nil && *to.Name == ref.Name)
					}
				}
			}
			assert.True(t, granted, "no ReferenceGrant lets the route reach %s/%s", ns, ref.Name)
		}
	}
	assert.True(t, catchAll, "a catch-all rule")
	for _, b := range cfg.Backends {
		assert.True(t, routed[b.Name], "backend %s has no rule", b.Name)
	}
}

// TestEnvoyGatewayFailover: every failover chain of the Kubernetes
// streamgate.yaml has an HTTPRoute rule matching its name whose backendRefs
// are Backends for the chain's backends in order (the fallbacks marked
// fallback: true, the same host and port as in streamgate.yaml), and a
// BackendTrafficPolicy on that rule ejects a failing primary and retries
// once per fallback.
func TestEnvoyGatewayFailover(t *testing.T) {
	objs := loadEnvoyGateway(t)
	_, k8s := loadKubernetes(t)
	cm := find[*corev1.ConfigMap](t, k8s, "ConfigMap", "streamgate-config")
	file := filepath.Join(t.TempDir(), "streamgate.yaml")
	require.NoError(t, os.WriteFile(file, []byte(cm.Data["streamgate.yaml"]), 0o600))
	cfg, err := config.Load(file)
	require.NoError(t, err)
	route := find[*gwapiv1.HTTPRoute](t, objs, "HTTPRoute", "streamgate-models")

	chains := 0
	for _, m := range cfg.Models {
		for _, v := range m.Versions {
			chain := contract.FailoverChain(v.Backend, m.Fallbacks)
			if len(chain) < 2 {
				continue
			}
			chains++
			name := contract.FailoverCluster(chain)
			var rule *gwapiv1.HTTPRouteRule
			for i, r := range route.Spec.Rules {
				if len(r.Matches[0].Headers) > 0 && r.Matches[0].Headers[0].Value == name {
					rule = &route.Spec.Rules[i]
				}
			}
			require.NotNil(t, rule, "no rule for failover chain %s", name)
			require.Len(t, rule.BackendRefs, len(chain))
			for k, ref := range rule.BackendRefs {
				require.Equal(t, "Backend", string(*ref.Kind))
				be := find[*egBackend](t, objs, "Backend", string(ref.Name))
				assert.Equal(t, k > 0, be.Spec.Fallback != nil && *be.Spec.Fallback, "only fallbacks are fallback: true")
				require.Len(t, be.Spec.Endpoints, 1)
				ep := be.Spec.Endpoints[0].FQDN
				assert.Equal(t, cfg.Backend(chain[k]).Endpoints[0].Address, ep.Hostname+":"+strconv.Itoa(ep.Port))
			}
			require.NotNil(t, rule.Name)
			var policy *backendTrafficPolicy
			for _, o := range objs {
				if p, ok := o.obj.(*backendTrafficPolicy); ok {
					for _, ref := range p.Spec.TargetRefs {
						if string(ref.Name) == route.Name && ref.SectionName != nil && *ref.SectionName == *rule.Name {
							policy = p
						}
					}
				}
			}
			require.NotNil(t, policy, "no BackendTrafficPolicy on rule %s", *rule.Name)
			require.NotNil(t, policy.Spec.HealthCheck.Passive.Consecutive5XxErrors)
			assert.Equal(t, 1, *policy.Spec.HealthCheck.Passive.Consecutive5XxErrors, "the first 5xx moves to the fallback")
			assert.Equal(t, len(chain)-1, *policy.Spec.Retry.NumRetries)
			assert.Contains(t, policy.Spec.Retry.RetryOn.Triggers, "5xx")
		}
	}
	assert.Positive(t, chains, "the example shows a model with fallbacks")
}

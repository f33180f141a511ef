package examples_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// object is one decoded manifest document.
type object struct {
	file string
	kind string
	name string
	obj  any
}

// typedKinds maps apiVersion/kind to a constructor of its typed Go struct.
// A manifest of any other kind fails the test.
var typedKinds = map[string]func() any{
	"v1/Namespace":                       func() any { return &corev1.Namespace{} },
	"v1/ConfigMap":                       func() any { return &corev1.ConfigMap{} },
	"v1/Service":                         func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                 func() any { return &appsv1.Deployment{} },
	"policy/v1/PodDisruptionBudget":      func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy": func() any { return &networkingv1.NetworkPolicy{} },
}

// decodeManifests reads every YAML document of the files and decodes each
// strictly (unknown or duplicate fields fail) into its typed struct.
func decodeManifests(t *testing.T, kinds map[string]func() any, files ...string) []object {
	t.Helper()
	var out []object
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, f)
			if len(bytes.TrimSpace(stripComments(doc))) == 0 {
				continue
			}
			var tm metav1.TypeMeta
			require.NoError(t, yaml.Unmarshal(doc, &tm), f)
			newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
			require.True(t, ok, "%s: unexpected kind %s/%s", f, tm.APIVersion, tm.Kind)
			obj := newObj()
			require.NoError(t, yaml.UnmarshalStrict(doc, obj), "%s: %s does not decode strictly", f, tm.Kind)
			var meta struct {
				Metadata struct{ Name string } `json:"metadata"`
			}
			require.NoError(t, yaml.Unmarshal(doc, &meta))
			require.NotEmpty(t, meta.Metadata.Name, "%s: %s has no name", f, tm.Kind)
			out = append(out, object{file: filepath.Base(f), kind: tm.Kind, name: meta.Metadata.Name, obj: obj})
		}
	}
	return out
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			b.Write(line)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// find returns the decoded object of kind and name.
func find[T any](t *testing.T, objs []object, kind, name string) T {
	t.Helper()
	for _, o := range objs {
		if o.kind == kind && o.name == name {
			return o.obj.(T)
		}
	}
	t.Fatalf("no %s %q", kind, name)
	var zero T
	return zero
}

func metav1LabelSelector(pdb *policyv1.PodDisruptionBudget) (labels.Selector, error) {
	return metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
}

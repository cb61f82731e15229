package chaosmesh

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fakediscovery "k8s.io/client-go/discovery/fake"
	clienttesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"
)

func served(kinds ...string) *metav1.APIResourceList {
	l := &metav1.APIResourceList{GroupVersion: "chaos-mesh.org/v1alpha1"}
	for _, k := range kinds {
		l.APIResources = append(l.APIResources, metav1.APIResource{Name: strings.ToLower(k), Kind: k, Namespaced: true})
	}
	return l
}

func TestMissingCRDsNamesTheCRDsTheAPIServerDoesNotServe(t *testing.T) {
	tests := map[string]struct {
		resources []*metav1.APIResourceList
		fail      error
		want      []string
		wantErr   string
	}{
		"with Chaos Mesh installed, nothing is missing": {
			resources: []*metav1.APIResourceList{served("NetworkChaos", "IOChaos", "StressChaos", "PodChaos", "Schedule")},
		},
		"without the chaos-mesh.org group, all four are missing": {
			resources: []*metav1.APIResourceList{{GroupVersion: "faultline.dev/v1alpha1"}},
			want:      []string{"networkchaos.chaos-mesh.org", "iochaos.chaos-mesh.org", "stresschaos.chaos-mesh.org", "podchaos.chaos-mesh.org"},
		},
		"with only some kinds served, the others are missing": {
			resources: []*metav1.APIResourceList{served("PodChaos", "NetworkChaos")},
			want:      []string{"iochaos.chaos-mesh.org", "stresschaos.chaos-mesh.org"},
		},
		"a failing discovery is an error, not a missing CRD": {
			fail:    errors.New("connection refused"),
			wantErr: "connection refused",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fake := &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{Resources: tc.resources}}
			if tc.fail != nil {
				fake.PrependReactor("*", "*", func(clienttesting.Action) (bool, runtime.Object, error) { return true, nil, tc.fail })
			}
			got, err := MissingCRDs(fake)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("missing %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNotInstalledSaysWhatToDo(t *testing.T) {
	if err := NotInstalled(nil); err != nil {
		t.Errorf("nothing missing is no error: %v", err)
	}
	err := NotInstalled([]string{"networkchaos.chaos-mesh.org", "iochaos.chaos-mesh.org"})
	want := "spec.engine: chaos-mesh needs Chaos Mesh's CRDs (networkchaos.chaos-mesh.org, iochaos.chaos-mesh.org) and they are not installed; install Chaos Mesh or use engine: faultline"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	var nie *NotInstalledError
	if !errors.As(err, &nie) || len(nie.CRDs) != 2 {
		t.Errorf("not a *NotInstalledError: %#v", err)
	}
}

// deploy/chaosmesh/crds holds the CRDs of every kind Object makes, so that
// a cluster without Chaos Mesh can at least serve them.
func TestTheShippedCRDsServeEveryKind(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "deploy", "chaosmesh", "crds", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no CRD in deploy/chaosmesh/crds")
	}
	shipped := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var crd struct {
			Metadata struct{ Name string }
			Spec     struct{ Names struct{ Kind string } }
		}
		if err := yaml.Unmarshal(b, &crd); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		shipped[crd.Metadata.Name] = crd.Spec.Names.Kind
	}
	for i, gvk := range Kinds() {
		if kind, ok := shipped[CRDs()[i]]; !ok || kind != gvk.Kind {
			t.Errorf("%s (kind %s) is not in deploy/chaosmesh/crds", CRDs()[i], gvk.Kind)
		}
	}
}

package catalog

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"faultline.dev/faultline/experiments/schema"
)

func TestEveryLandedVariantPreparesIntoAValidExperiment(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	b := Bindings{SandboxDir: "/var/lib/faultline/sandbox/ci", PrometheusURL: "http://10.200.0.1:9090"}
	landed := 0
	for _, s := range c.Scenarios {
		if !s.IsLanded() {
			continue
		}
		landed++
		for _, v := range s.Variants {
			t.Run(s.Name+"/"+v.Name, func(t *testing.T) {
				r, err := s.Prepare(v, s.Namespace+"-x", b)
				if err != nil {
					t.Fatal(err)
				}
				if errs, err := schema.Check(r.Experiment); err != nil || len(errs) > 0 {
					t.Fatalf("the prepared experiment is invalid: %v %v", err, errs)
				}
				raw, _ := File(s.ExperimentFile(v))
				if strings.Contains(string(raw), examplePrometheus) && r.Experiment.Spec.Prometheus.Address != b.PrometheusURL {
					t.Errorf("prometheus address %q, want the bound %q", r.Experiment.Spec.Prometheus.Address, b.PrometheusURL)
				}
				for _, o := range r.Workload {
					subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
					for _, sub := range subjects {
						if ns := sub.(map[string]any)["namespace"]; ns != nil && ns != r.Namespace {
							t.Errorf("%s %s binds a subject of namespace %v, want %s", o.GetKind(), o.GetName(), ns, r.Namespace)
						}
					}
					// Cluster-scoped objects (a PriorityClass) are shared by
					// every run and stay as they are.
					clusterScoped := map[string]bool{"PriorityClass": true}[o.GetKind()]
					if clusterScoped && o.GetNamespace() != "" {
						t.Errorf("%s %s has a namespace", o.GetKind(), o.GetName())
					}
					if o.GetKind() == "Namespace" && o.GetName() != r.Namespace || o.GetKind() != "Namespace" && !clusterScoped && o.GetNamespace() != r.Namespace {
						t.Errorf("%s %s/%s is not moved to %s", o.GetKind(), o.GetNamespace(), o.GetName(), r.Namespace)
					}
				}
				if r.Experiment.Namespace != r.Namespace || r.Experiment.GenerateName == "" {
					t.Errorf("experiment %s/%s (generateName %q), want it in %s with a generated name", r.Experiment.Namespace, r.Experiment.Name, r.Experiment.GenerateName, r.Namespace)
				}
			})
		}
	}
	if landed < 5 {
		t.Errorf("%d landed scenarios, want at least 5", landed)
	}
}

func TestEachScenarioWritesDownAFailingAndAPassingOutcome(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range c.Scenarios {
		if s.Story == "" || s.Title == "" {
			t.Errorf("%s: no story or title", s.Name)
		}
		for _, v := range s.Variants {
			if v.Outcome == "" {
				t.Errorf("%s/%s: no outcome written down", s.Name, v.Name)
			}
		}
	}
}

func TestAMovedRolloutExperimentAimsItsTrafficAndObjectivesAtTheNewNamespace(t *testing.T) {
	c, _ := Load()
	s, err := c.Get("rolling-update")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := s.Variant("fragile")
	r, err := s.Prepare(v, "rollout-run1", Bindings{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "http://web.rollout-run1.svc/"; r.Experiment.Spec.Traffic.URL != want {
		t.Errorf("traffic URL %q, want %q", r.Experiment.Spec.Traffic.URL, want)
	}
	for _, o := range r.Workload {
		if p := o.GetAnnotations()[ingressPath]; p != "" && p != "/rollout-run1" {
			t.Errorf("ingress path %q, want /rollout-run1", p)
		}
	}
}

func TestBadScenarioInputIsRefusedNamingIt(t *testing.T) {
	c, _ := Load()
	tests := map[string]struct {
		run  func() error
		want string
	}{
		"an unknown scenario lists the known ones": {func() error { _, err := c.Get("meteor-strike"); return err }, `scenario "meteor-strike": no such scenario in the catalog; known: etcd-slow-disk, memory-overcommit`},
		"an unknown variant lists the scenario's": {func() error {
			s, _ := c.Get("rolling-update")
			_, err := s.Variant("sturdy")
			return err
		}, `variant "sturdy": scenario rolling-update has fragile, hardened`},
		"a scenario that has not landed cannot run": {func() error {
			s := Scenario{Name: "written-down", Landed: new(false), Variants: []Variant{{Name: "fragile"}}}
			_, err := s.Prepare(s.Variants[0], "", Bindings{})
			return err
		}, "has not landed yet"},
		"a variant written for upstream timings is refused on a fast sandbox, saying how to get one": {func() error {
			s, _ := c.Get("node-off-network")
			v, _ := s.Variant("upstream")
			_, err := s.Prepare(v, "", Bindings{Timings: "fast"})
			return err
		}, "variant upstream (timings: upstream) is written for upstream node timings and the sandbox runs fast ones; bring up a sandbox with --timings upstream"},
		"a need the sandbox cannot offer is refused, listing those it can": {func() error {
			_, err := parse([]byte("scenarios:\n- name: s\n  experiment: node-partition.yaml\n  needs: [real-nodes]\n  variants: []\n"))
			return err
		}, `catalog: s: needs: "real-nodes" is not something a cluster offers here; want one of [real-node isolated-node prometheus ingress]`},
		"an experiment that needs Prometheus without one says how to get one": {func() error {
			s, _ := c.Get("etcd-slow-disk")
			_, err := s.Prepare(s.Variants[0], "", Bindings{})
			return err
		}, "spec.prometheus.address: the experiment queries a Prometheus and none is known"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if err := tc.run(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// The demo sizes its sandbox by the scenarios' needs, so a need left out
// is a run that fails on a missing node.
func TestEveryScenarioNeedsWhatItsManifestsUse(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	b := Bindings{SandboxDir: "/var/lib/faultline/sandbox/ci", PrometheusURL: "http://10.200.0.1:9090"}
	for _, s := range c.Scenarios {
		if !s.IsLanded() {
			continue
		}
		for _, v := range s.Variants {
			r, err := s.Prepare(v, "", b)
			if err != nil {
				t.Fatalf("%s/%s: %v", s.Name, v.Name, err)
			}
			uses := map[Need]string{}
			if n := r.Experiment.Spec.Targets.Nodes; n != nil {
				for _, name := range n.Names {
					switch {
					case strings.HasPrefix(name, "isolated-"):
						uses[NeedIsolatedNode] = "its experiment targets node " + name
					case strings.HasPrefix(name, "real-"):
						uses[NeedRealNode] = "its experiment targets node " + name
					}
				}
			}
			if p := r.Experiment.Spec.Prometheus; p != nil && p.Address != "" {
				uses[NeedPrometheus] = "its experiment queries Prometheus"
			}
			for _, o := range r.Workload {
				if sel, _, _ := unstructured.NestedString(o.Object, "spec", "template", "spec", "nodeSelector", "faultline.dev/sandbox-node"); sel == "real" {
					uses[NeedRealNode] = o.GetKind() + " " + o.GetName() + " runs on real nodes"
				}
			}
			for need, why := range uses {
				if !slices.Contains(s.Needs, need) {
					t.Errorf("%s/%s: %s, and the scenario's needs %v lack %s", s.Name, v.Name, why, s.Needs, need)
				}
			}
		}
	}
}

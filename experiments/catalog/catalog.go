// Package catalog is faultline's set of ready scenarios: failure stories
// with their expected outcome written down, a fragile and a hardened
// variant of the workload, and the experiment that tells them apart. It is
// embedded in the binary; its manifests are deploy/examples', so that the
// catalog, the examples and the tests run the very same files.
package catalog

import (
	_ "embed"
	"fmt"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"faultline.dev/faultline/deploy"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

//go:embed catalog.yaml
var index []byte

// Scenario is one failure story.
type Scenario struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	Story string `json:"story"`
	// Namespace the workloads and the experiment use in the files.
	Namespace string `json:"namespace"`
	// Experiment file (deploy/examples) that judges every variant, unless a
	// variant names its own.
	Experiment string `json:"experiment"`
	// Needs are what the cluster must offer.
	Needs []Need `json:"needs,omitempty"`
	// Demo names the variants the demo gameday runs.
	Demo []string `json:"demo,omitempty"`
	// Landed is false for a scenario written down but not runnable yet.
	Landed   *bool     `json:"landed,omitempty"`
	Variants []Variant `json:"variants"`
}

// Need is something a scenario needs of the cluster.
type Need string

// What a scenario may need; `faultline demo` sizes its sandbox by them.
const (
	// NeedRealNode is a node with a kubelet and containerd, for pods that
	// really run.
	NeedRealNode Need = "real-node"
	// NeedIsolatedNode is a simulated node in a network namespace of its
	// own, which a real network fault can cut off.
	NeedIsolatedNode Need = "isolated-node"
	// NeedPrometheus is a Prometheus that scrapes the cluster.
	NeedPrometheus Need = "prometheus"
	// NeedIngress is an ingress in front of the cluster's Services.
	NeedIngress Need = "ingress"
)

// Needs are every Need, in the order the catalog's docs give them.
var Needs = []Need{NeedRealNode, NeedIsolatedNode, NeedPrometheus, NeedIngress}

// Variant is one version of the workload and the verdict it must get.
type Variant struct {
	Name string `json:"name"`
	// Workload file (deploy/examples) applied before the experiment.
	Workload string `json:"workload,omitempty"`
	// Experiment overrides the scenario's.
	Experiment string `json:"experiment,omitempty"`
	// Expect is the verdict the variant gets: Passed or Failed.
	Expect v1alpha1.Verdict `json:"expect"`
	// Outcome is what happens, as measured.
	Outcome string `json:"outcome"`
	// Timings are the node-lifecycle timings (upstream or fast) the
	// variant is written for, when its figures depend on them.
	Timings string `json:"timings,omitempty"`
}

// IsLanded reports whether the scenario can run.
func (s Scenario) IsLanded() bool { return s.Landed == nil || *s.Landed }

// Variant returns the named variant.
func (s Scenario) Variant(name string) (Variant, error) {
	var names []string
	for _, v := range s.Variants {
		if v.Name == name {
			return v, nil
		}
		names = append(names, v.Name)
	}
	return Variant{}, fmt.Errorf("variant %q: scenario %s has %s", name, s.Name, strings.Join(names, ", "))
}

// ExperimentFile is the experiment that judges the variant.
func (s Scenario) ExperimentFile(v Variant) string {
	if v.Experiment != "" {
		return v.Experiment
	}
	return s.Experiment
}

// Catalog is the embedded scenarios, in their order.
type Catalog struct {
	Scenarios []Scenario `json:"scenarios"`
}

// Load parses the embedded catalog and checks that every file it names is
// shipped.
func Load() (*Catalog, error) { return parse(index) }

func parse(b []byte) (*Catalog, error) {
	var c Catalog
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	for _, s := range c.Scenarios {
		files := []string{s.Experiment}
		for _, n := range s.Needs {
			if !slices.Contains(Needs, n) {
				return nil, fmt.Errorf("catalog: %s: needs: %q is not something a cluster offers here; want one of %v", s.Name, n, Needs)
			}
		}
		for _, d := range s.Demo {
			if _, err := s.Variant(d); err != nil {
				return nil, fmt.Errorf("catalog: %s: demo: %w", s.Name, err)
			}
		}
		for _, v := range s.Variants {
			if v.Expect != v1alpha1.VerdictPassed && v.Expect != v1alpha1.VerdictFailed {
				return nil, fmt.Errorf("catalog: %s/%s: expect %q, want Passed or Failed", s.Name, v.Name, v.Expect)
			}
			files = append(files, v.Workload, v.Experiment)
		}
		for _, f := range files {
			if f == "" {
				continue
			}
			if _, err := deploy.Files.ReadFile("examples/" + f); err != nil {
				return nil, fmt.Errorf("catalog: %s: %w", s.Name, err)
			}
		}
	}
	return &c, nil
}

// Demo are the landed scenarios the demo gameday runs, in order.
func (c *Catalog) Demo() []Scenario {
	var out []Scenario
	for _, s := range c.Scenarios {
		if len(s.Demo) > 0 && s.IsLanded() {
			out = append(out, s)
		}
	}
	return out
}

// Needing says whether any of the scenarios needs n.
func Needing(scenarios []Scenario, n Need) bool {
	for _, s := range scenarios {
		if slices.Contains(s.Needs, n) {
			return true
		}
	}
	return false
}

// Get returns a scenario by name, or an error that lists the known ones.
func (c *Catalog) Get(name string) (Scenario, error) {
	var names []string
	for _, s := range c.Scenarios {
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return Scenario{}, fmt.Errorf("scenario %q: no such scenario in the catalog; known: %s (faultline catalog list)", name, strings.Join(names, ", "))
}

// File reads a manifest of deploy/examples.
func File(name string) ([]byte, error) { return deploy.Files.ReadFile("examples/" + name) }

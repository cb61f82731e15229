package catalog

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"faultline.dev/faultline/deploy"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// Bindings are what a run learns of the cluster it runs on: the example
// files are written for the default sandbox.
type Bindings struct {
	// SandboxDir is the sandbox's directory: its etcd's data directory
	// tells that etcd from another sandbox's.
	SandboxDir string
	// PrometheusURL is the Prometheus the experiments query.
	PrometheusURL string
	// Timings are the sandbox's node-lifecycle timings (upstream or fast),
	// when known.
	Timings string
}

// Fits says why a variant cannot run with these bindings, or "".
func (b Bindings) Fits(v Variant) string {
	if v.Timings != "" && b.Timings != "" && v.Timings != b.Timings {
		return fmt.Sprintf("variant %s (timings: %s) is written for %s node timings and the sandbox runs %s ones; bring up a sandbox with --timings %s", v.Name, v.Timings, v.Timings, b.Timings, v.Timings)
	}
	return ""
}

// The example files' placeholders.
const (
	examplePrometheus = "http://PROMETHEUS:9090"
	exampleEtcdDir    = "--data-dir=/var/lib/faultline/sandbox/default/etcd"
	ingressPath       = "sandbox.faultline.dev/ingress-path"
)

// Run is a variant ready to run: its workload and its experiment, moved
// into a namespace of its own so that runs do not wait for each other's
// namespaces to go away.
type Run struct {
	Scenario, Variant string
	Namespace         string
	Workload          []*unstructured.Unstructured
	Experiment        *v1alpha1.Experiment
	Expect            v1alpha1.Verdict
}

// Prepare binds a variant to namespace ns (the experiment file's own when
// empty, and always for variants without a workload, which create no
// namespace) and to the cluster.
func (s Scenario) Prepare(v Variant, ns string, b Bindings) (*Run, error) {
	if !s.IsLanded() {
		return nil, fmt.Errorf("scenario %s is written down but has not landed yet: it cannot run", s.Name)
	}
	if why := b.Fits(v); why != "" {
		return nil, fmt.Errorf("scenario %s: %s", s.Name, why)
	}
	file := s.ExperimentFile(v)
	raw, err := File(file)
	if err != nil {
		return nil, err
	}
	var exp v1alpha1.Experiment
	if err := yaml.UnmarshalStrict(raw, &exp); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	from := s.Namespace
	if ns == "" || v.Workload == "" {
		// Nothing of the variant creates a namespace (or none was asked
		// for): the experiment runs where its file says.
		from, ns = exp.Namespace, exp.Namespace
	}
	r := &Run{Scenario: s.Name, Variant: v.Name, Namespace: ns, Expect: v.Expect}
	if v.Workload != "" {
		b, err := File(v.Workload)
		if err != nil {
			return nil, err
		}
		objs, err := deploy.Decode(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.Workload, err)
		}
		for _, o := range objs {
			if o.GetKind() == "Namespace" {
				o.SetName(ns)
			} else if o.GetNamespace() != "" {
				o.SetNamespace(ns)
			}
			moveSubjects(o, from, ns)
			if a := o.GetAnnotations(); a[ingressPath] != "" {
				a[ingressPath] = "/" + ns
				o.SetAnnotations(a)
			}
		}
		r.Workload = objs
	}
	if err := bindExperiment(&exp, from, ns, b); err != nil {
		return nil, fmt.Errorf("%s/%s: %w", s.Name, v.Name, err)
	}
	r.Experiment = &exp
	return r, nil
}

// bindExperiment moves the experiment from namespace from to to, names it
// for one run, and fills in the cluster's placeholders.
func bindExperiment(exp *v1alpha1.Experiment, from, to string, b Bindings) error {
	exp.Namespace = to
	if exp.Name != "" {
		exp.GenerateName, exp.Name = exp.Name+"-", ""
	}
	if p := exp.Spec.Targets.Pods; p != nil {
		for i, n := range p.Namespaces {
			if n == from {
				p.Namespaces[i] = to
			}
		}
	}
	if t := exp.Spec.Traffic; t != nil {
		t.URL = strings.ReplaceAll(t.URL, "."+from+".svc", "."+to+".svc")
	}
	for i := range exp.Spec.Objectives {
		o := &exp.Spec.Objectives[i]
		// A namespace, or a NAMESPACE/NAME key, in a string.
		o.Expr = strings.ReplaceAll(o.Expr, `"`+from+`"`, `"`+to+`"`)
		o.Expr = strings.ReplaceAll(o.Expr, `"`+from+`/`, `"`+to+`/`)
	}
	for i := range exp.Spec.Faults {
		if d := exp.Spec.Faults[i].DiskLatency; d != nil && d.Process != nil && d.Process.CommandLineContains == exampleEtcdDir && b.SandboxDir != "" {
			d.Process.CommandLineContains = "--data-dir=" + strings.TrimSuffix(b.SandboxDir, "/") + "/etcd"
		}
	}
	if pr := exp.Spec.Prometheus; pr != nil && pr.Address == examplePrometheus {
		if b.PrometheusURL == "" {
			return fmt.Errorf("spec.prometheus.address: the experiment queries a Prometheus and none is known; start the sandbox with --prometheus, or give --prometheus URL")
		}
		pr.Address = b.PrometheusURL
	}
	return nil
}

// moveSubjects points a RoleBinding's service accounts of namespace from
// at namespace to, where the run put them.
func moveSubjects(o *unstructured.Unstructured, from, to string) {
	if o.GetKind() != "RoleBinding" {
		return
	}
	subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
	for _, s := range subjects {
		if m, ok := s.(map[string]any); ok && m["namespace"] == from {
			m["namespace"] = to
		}
	}
	_ = unstructured.SetNestedSlice(o.Object, subjects, "subjects")
}

package controllertest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	cm "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"

	"faultline.dev/faultline/charts"
	"faultline.dev/faultline/deploy"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/controller"
)

// controllerUser is the controller's identity in the chart's policy, for
// this tier's faultline namespace.
const controllerUser = "system:serviceaccount:" + Namespace + ":faultline-controller"

// installTenancy applies the chart's tenancy roles and policy, as the chart
// renders them for this tier's namespace, and waits until the API server
// enforces the policy (a policy is active a moment after its creation).
func installTenancy(t *testing.T) {
	t.Helper()
	r, err := charts.Render(nil, Namespace)
	if err != nil {
		t.Fatal(err)
	}
	manifests := r.Source(charts.TenancyTemplate)
	if manifests == "" {
		t.Fatalf("the chart renders nothing from %s", charts.TenancyTemplate)
	}
	if err := deploy.Apply(context.Background(), cfg, []byte(manifests)); err != nil {
		t.Fatalf("apply %s: %v", charts.TenancyTemplate, err)
	}
	// A user who may create experiments in default, and nothing more.
	bind(t, "tenancy-probe", charts.RoleExperimenter, "default")
	probe := manifestOf(t, experiment("default", onNodes("node-a")))
	for range 60 {
		if out, err := kubectl(probe, "create", "--dry-run=server", "-f", "-", "--as=tenancy-probe"); err != nil && strings.Contains(out, charts.TenancyPolicy) {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatal("the API server never enforced the tenancy policy")
}

// manifestOf is obj as the YAML a user would write.
func manifestOf(t *testing.T, obj client.Object) string {
	t.Helper()
	switch o := obj.(type) {
	case *v1alpha1.Experiment:
		o.TypeMeta = metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Experiment"}
	case *v1alpha1.Schedule:
		o.TypeMeta = metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Schedule"}
	}
	b, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// bind grants user the chart's role: in ns, or cluster-wide when ns is "".
func bind(t *testing.T, user, role, ns string) {
	t.Helper()
	ctx := context.Background()
	subjects := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}
	ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role}
	var obj client.Object
	if ns == "" {
		obj = &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role + "-" + rand.String(6)}, Subjects: subjects, RoleRef: ref}
	} else {
		obj = &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role + "-" + rand.String(6), Namespace: ns}, Subjects: subjects, RoleRef: ref}
	}
	if err := k8s.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), obj) })
}

// schedule is a Schedule in ns that never comes due by itself, whose
// template is the experiment e, or a gameday of steps when more are given.
func schedule(ns string, e *v1alpha1.Experiment, more ...*v1alpha1.Experiment) *v1alpha1.Schedule {
	s := &v1alpha1.Schedule{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sched-" + rand.String(5)},
		Spec:       v1alpha1.ScheduleSpec{Schedule: "0 3 1 1 *"},
	}
	if len(more) == 0 {
		s.Spec.Template.Experiment = &e.Spec
		return s
	}
	g := &v1alpha1.Gameday{}
	for i, step := range append([]*v1alpha1.Experiment{e}, more...) {
		g.Steps = append(g.Steps, v1alpha1.GamedayStep{Name: fmt.Sprintf("step-%d", i), Experiment: step.Spec})
	}
	s.Spec.Template.Gameday = g
	return s
}

// The author's own rights decide what an experiment may touch, asked at
// admission through kubectl as each user (--as), the path users take: a
// node fault needs inject on nodes cluster-wide, pods of another namespace
// need inject on pods there, the experiment's own namespace needs nothing
// more than creating it. A refusal names the field, the permission and the
// command that grants it.
func TestTheAuthorsRightsDecideWhatAnExperimentMayTouch(t *testing.T) {
	installTenancy(t)
	ctx := context.Background()
	teamA, teamB := "team-a-"+rand.String(5), "team-b-"+rand.String(5)
	for _, ns := range []string{teamA, teamB} {
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{v1alpha1.LabelChaosEnabled: "enabled"}}}
		if err := k8s.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	const (
		alice = "alice"                                             // experimenter in team-a only
		bob   = "bob"                                               // experimenter in team-a and team-b
		carol = "carol"                                             // experimenter in team-a, cluster experimenter
		vic   = "vic"                                               // viewer in team-a
		other = "system:serviceaccount:" + Namespace + ":lookalike" // not the controller, with its RBAC
	)
	bind(t, alice, charts.RoleExperimenter, teamA)
	bind(t, bob, charts.RoleExperimenter, teamA)
	bind(t, bob, charts.RoleExperimenter, teamB)
	bind(t, carol, charts.RoleExperimenter, teamA)
	bind(t, carol, charts.RoleClusterExperimenter, "")
	bind(t, vic, charts.RoleViewer, teamA)
	bind(t, controllerUser, charts.RoleExperimenter, teamA)
	bind(t, other, charts.RoleExperimenter, teamA)

	nodeRefusal := func(field, user string) []string {
		return []string{charts.TenancyPolicy, field + ": " + user + " may not inject faults on nodes",
			"verb inject, resource nodes, group faultline.dev, cluster-wide",
			"kubectl create clusterrolebinding faultline-cluster-experimenter:" + user + " --clusterrole=faultline-cluster-experimenter --user=" + user}
	}
	podRefusal := func(field, user, ns string) []string {
		return []string{charts.TenancyPolicy, field + ": " + user + " may not inject faults on pods of " + ns,
			"verb inject, resource pods, group faultline.dev, in that namespace",
			"kubectl create rolebinding faultline-experimenter:" + user + " -n " + ns + " --clusterrole=faultline-experimenter --user=" + user}
	}
	byName := func(ns string) func(*v1alpha1.Experiment) {
		return func(e *v1alpha1.Experiment) {
			e.Spec.Targets = v1alpha1.Targets{Pods: &cm.PodSelectorSpec{Pods: map[string][]string{ns: {"web-0"}}}}
		}
	}
	tests := map[string]struct {
		as          string
		obj         client.Object
		wantRefused []string // nil: admitted
	}{
		"a namespace-level user may target its own namespace's pods": {
			as: alice, obj: experiment(teamA, onPods(teamA)),
		},
		"a namespace-level user may target its own namespace's pods by default (no namespaces given)": {
			as: alice, obj: experiment(teamA, onPods()),
		},
		"a namespace-level user is refused a node target, naming the permission and the command": {
			as: alice, obj: experiment(teamA, onNodes("node-a")), wantRefused: nodeRefusal("spec.targets.nodes", alice),
		},
		"a namespace-level user is refused pods of another namespace": {
			as: alice, obj: experiment(teamA, onPods(teamB)), wantRefused: podRefusal("spec.targets.pods", alice, teamB),
		},
		"pods of another namespace named pod by pod are refused alike": {
			as: alice, obj: experiment(teamA, byName(teamB)), wantRefused: podRefusal("spec.targets.pods", alice, teamB),
		},
		"a user with inject on pods in the other namespace may target them": {
			as: bob, obj: experiment(teamA, onPods(teamA, teamB)),
		},
		"with the cluster role granted, a node target is allowed": {
			as: carol, obj: experiment(teamA, onNodes("node-a")),
		},
		"with the cluster role granted, any namespace's pods are allowed": {
			as: carol, obj: experiment(teamA, onPods(teamB)),
		},
		"a Schedule whose template cuts nodes is refused to a namespace-level user": {
			as: alice, obj: schedule(teamA, experiment(teamA, onNodes("node-a"))),
			wantRefused: nodeRefusal("spec.template.experiment.targets.nodes", alice),
		},
		"a gameday's step on another namespace is refused, naming the step": {
			as: alice, obj: schedule(teamA, experiment(teamA, onPods(teamA)), experiment(teamA, onPods(teamB))),
			wantRefused: podRefusal("spec.template.gameday.steps[step-1].experiment.targets.pods", alice, teamB),
		},
		"a namespace-level user's Schedule on its own pods is admitted": {
			as: alice, obj: schedule(teamA, experiment(teamA, onPods(teamA)), experiment(teamA, onPods())),
		},
		"a cluster experimenter's node Schedule is admitted": {
			as: carol, obj: schedule(teamA, experiment(teamA, onNodes("node-a"))),
		},
		"the controller creates a Schedule's runs: its node experiment passes as the checked Schedule's": {
			as: controllerUser, obj: experiment(teamA, onNodes("node-a")),
		},
		"another account with the controller's rights in the namespace is refused": {
			as: other, obj: experiment(teamA, onNodes("node-a")), wantRefused: nodeRefusal("spec.targets.nodes", other),
		},
		"the viewer may not create an experiment (RBAC)": {
			as: vic, obj: experiment(teamA, onPods(teamA)), wantRefused: []string{"forbidden", `cannot create resource "experiments"`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, err := kubectl(manifestOf(t, tc.obj), "create", "--dry-run=server", "-f", "-", "--as="+tc.as)
			if tc.wantRefused == nil {
				if err != nil {
					t.Fatalf("kubectl create --dry-run=server --as=%s: %v\n%s", tc.as, err, out)
				}
				return
			}
			if err == nil {
				t.Fatalf("kubectl create --dry-run=server --as=%s admitted it, want refused:\n%s", tc.as, out)
			}
			for _, w := range tc.wantRefused {
				if !strings.Contains(out, w) {
					t.Errorf("the refusal lacks %q:\n%s", w, out)
				}
			}
		})
	}

	t.Run("a Schedule changed by someone without the rights its template needs is refused, by its author admitted", func(t *testing.T) {
		s := schedule(teamA, experiment(teamA, onNodes("node-a")))
		if out, err := kubectl(manifestOf(t, s), "create", "-f", "-", "--as="+carol); err != nil {
			t.Fatalf("carol's node Schedule: %v\n%s", err, out)
		}
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), s) })
		patch := []string{"patch", "schedule", s.Name, "-n", teamA, "--type=merge", "-p", `{"spec":{"suspend":true}}`}
		out, err := kubectl("", append(patch, "--as="+alice)...)
		if err == nil {
			t.Fatalf("alice changed carol's node Schedule:\n%s", out)
		}
		for _, w := range nodeRefusal("spec.template.experiment.targets.nodes", alice) {
			if !strings.Contains(out, w) {
				t.Errorf("the refusal lacks %q:\n%s", w, out)
			}
		}
		if out, err := kubectl("", append(patch, "--as="+carol)...); err != nil {
			t.Errorf("carol changing her own node Schedule: %v\n%s", err, out)
		}
		// A manual run is an Experiment its triggerer creates, checked as
		// any other: alice cannot start carol's node Schedule either.
		run := experiment(teamA, onNodes("node-a"))
		if out, err := kubectl(manifestOf(t, run), "create", "--dry-run=server", "-f", "-", "--as="+alice); err == nil {
			t.Errorf("alice started a node run:\n%s", out)
		}
	})

	t.Run("the viewer lists experiments and reads reports, and cannot abort", func(t *testing.T) {
		e := experiment(teamA, onPods(teamA), dryRun())
		create(t, e)
		waitFor(t, e, 60*time.Second, "a verdict", final)
		report := controller.ReportName(e.Name)
		deadline := time.Now().Add(30 * time.Second)
		for k8s.Get(ctx, client.ObjectKey{Namespace: teamA, Name: report}, &corev1.ConfigMap{}) != nil {
			if time.Now().After(deadline) {
				t.Fatalf("no report ConfigMap %s/%s", teamA, report)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if out, err := kubectl("", "get", "experiments", "-n", teamA, "--as="+vic); err != nil || !strings.Contains(out, e.Name) {
			t.Errorf("the viewer listing experiments: %v\n%s", err, out)
		}
		if out, err := kubectl("", "get", "configmap", report, "-n", teamA, "-o", "jsonpath={.data.report\\.json}", "--as="+vic); err != nil || !strings.Contains(out, e.Name) {
			t.Errorf("the viewer reading the report: %v\n%s", err, out)
		}
		out, err := kubectl("", "annotate", "experiment", e.Name, "-n", teamA, v1alpha1.AnnotationAbort+"=true", "--as="+vic)
		if err == nil || !strings.Contains(out, `cannot patch resource "experiments"`) {
			t.Errorf("the viewer aborting: %v\n%s, want forbidden", err, out)
		}
		if out, err := kubectl("", "get", "experiments", "-n", teamB, "--as="+vic); err == nil {
			t.Errorf("the viewer of %s listed %s's experiments:\n%s", teamA, teamB, out)
		}
	})
}

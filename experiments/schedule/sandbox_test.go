//go:build sandbox

package schedule_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"faultline.dev/faultline/deploy"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/schedule"
	"faultline.dev/faultline/sandbox/sandboxtest"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

func kube(t testing.TB, env *sandboxtest.Env) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{v1alpha1.AddToScheme, corev1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(env.RESTConfig, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// nodeLoss is a NetworkLoss experiment on the isolated node isolated-0
// toward the API server: with dryRun it is final at once; with 0% loss it
// really holds a fault that changes nothing, for as long as it lasts.
func nodeLoss(loss int32, d time.Duration, dryRun bool) *v1alpha1.ExperimentSpec {
	return &v1alpha1.ExperimentSpec{
		Targets: v1alpha1.Targets{Nodes: &v1alpha1.NodeTargets{Names: []string{"isolated-0"}}},
		Faults: []v1alpha1.Fault{{Name: "cut", Type: v1alpha1.FaultNetworkLoss, Duration: metav1.Duration{Duration: d},
			NetworkLoss: &v1alpha1.NetworkLoss{LossPercent: loss, TowardAPIServer: true}}},
		DryRun: dryRun,
	}
}

func runs(t *testing.T, c client.Client, name string) []v1alpha1.Experiment {
	t.Helper()
	var list v1alpha1.ExperimentList
	if err := c.List(context.Background(), &list, client.InNamespace("default"), client.MatchingLabels{v1alpha1.LabelSchedule: name}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func create(t *testing.T, c client.Client, s *v1alpha1.Schedule) {
	t.Helper()
	if err := c.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The garbage collector deletes the runs; their finalizer recovers
		// any fault first.
		_ = c.Delete(context.Background(), s, client.PropagationPolicy(metav1.DeletePropagationForeground))
		sandboxtest.WaitFor(t, 2*time.Minute, "the schedule's experiments to be gone", func() bool { return len(runs(t, c, s.Name)) == 0 })
	})
}

func get(t *testing.T, c client.Client, name string) *v1alpha1.Schedule {
	t.Helper()
	var s v1alpha1.Schedule
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: name}, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

// An every-minute Schedule starts a run within a minute, named for its
// slot, and records the run's verdict; with Forbid, a slot that comes
// while a long run is active is skipped, with an event, and makes no
// second run.
func TestAScheduleRunsEveryMinuteAndForbidSkipsWhileARunIsActive(t *testing.T) {
	// Its runs hold real faults on isolated-0 (nodeLoss).
	sandboxtest.Parallel(t, sandboxtest.Alone(sandboxtest.Node("isolated-0")), sandboxtest.Shared(sandboxtest.ControlPlane))
	env := sandboxtest.Get(t)
	c := kube(t, env)
	t.Run("a run starts within a minute and its verdict is recorded", func(t *testing.T) {
		t.Parallel()
		s := &v1alpha1.Schedule{
			ObjectMeta: metav1.ObjectMeta{Name: "every-minute", Namespace: "default"},
			Spec: v1alpha1.ScheduleSpec{Schedule: "* * * * *", ConcurrencyPolicy: v1alpha1.ConcurrencyAllow,
				Template: v1alpha1.ScheduleTemplate{Experiment: nodeLoss(100, 5*time.Second, true)}},
		}
		create(t, c, s)
		sandboxtest.WaitFor(t, 75*time.Second, "a run", func() bool { return len(runs(t, c, s.Name)) > 0 })
		e := runs(t, c, s.Name)[0]
		slot := get(t, c, s.Name).Status.LastScheduleTime
		if slot == nil || e.Name != schedule.RunName(s.Name, slot.Time, false) {
			t.Errorf("run %s, last schedule time %v", e.Name, slot)
		}
		sandboxtest.WaitFor(t, 30*time.Second, "the run's verdict in the schedule's status", func() bool {
			v := get(t, c, s.Name).Status.LastVerdicts
			return len(v) > 0 && v[0].Verdict == v1alpha1.VerdictPassed
		})
	})
	t.Run("Forbid skips a slot while a run is active", func(t *testing.T) {
		t.Parallel()
		s := &v1alpha1.Schedule{
			ObjectMeta: metav1.ObjectMeta{Name: "forbid", Namespace: "default"},
			Spec: v1alpha1.ScheduleSpec{Schedule: "* * * * *", ConcurrencyPolicy: v1alpha1.ConcurrencyForbid,
				SuccessfulRunsHistoryLimit: ptr.To[int32](1),
				Template:                   v1alpha1.ScheduleTemplate{Experiment: nodeLoss(0, 150*time.Second, false)}},
		}
		create(t, c, s)
		sandboxtest.WaitFor(t, 75*time.Second, "a run", func() bool { return len(runs(t, c, s.Name)) > 0 })
		first := runs(t, c, s.Name)[0].Name
		sandboxtest.WaitFor(t, 75*time.Second, "the next slot to be skipped", func() bool {
			st := get(t, c, s.Name).Status
			return st.LastSkippedTime != nil && st.LastScheduleTime != nil && st.LastSkippedTime.After(st.LastScheduleTime.Time)
		})
		if rs := runs(t, c, s.Name); len(rs) != 1 || rs[0].Name != first {
			t.Errorf("runs %v, want only %s", rs, first)
		}
		if st := get(t, c, s.Name).Status; st.ActiveCount != 1 || st.Active[0].Experiment != first {
			t.Errorf("active %+v", st.Active)
		}
		var events corev1.EventList
		if err := c.List(context.Background(), &events, client.InNamespace("default")); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range events.Items {
			found = found || (e.InvolvedObject.Name == s.Name && e.Reason == "ConcurrencyForbid")
		}
		if !found {
			t.Error("no ConcurrencyForbid event")
		}
	})
}

// A Schedule as users write it, applied with kubectl: the controller never
// writes its spec, and a changed cron or template is taken up.
func TestAScheduleAppliedWithKubectlTakesUpItsChangedCronAndTemplate(t *testing.T) {
	// The gameday's steps cut isolated-0, then isolated-1.
	sandboxtest.Parallel(t, sandboxtest.Alone(sandboxtest.Node("isolated-0")), sandboxtest.Alone(sandboxtest.Node("isolated-1")), sandboxtest.Shared(sandboxtest.ControlPlane))
	env := sandboxtest.Get(t)
	c := kube(t, env)
	b, err := os.ReadFile(filepath.Join(sandboxtest.RepoRoot(), "deploy", "examples", "weekly-gameday.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := deploy.Decode(b)
	if err != nil || len(docs) != 1 {
		t.Fatalf("%d documents: %v", len(docs), err)
	}
	doc := docs[0]
	// No node is touched: the steps are dry runs, final at once.
	steps, _, _ := unstructured.NestedSlice(doc.Object, "spec", "template", "gameday", "steps")
	for _, st := range steps {
		st.(map[string]any)["experiment"].(map[string]any)["dryRun"] = true
	}
	if err := unstructured.SetNestedSlice(doc.Object, steps, "spec", "template", "gameday", "steps"); err != nil {
		t.Fatal(err)
	}
	apply := func() {
		t.Helper()
		out, err := yaml.Marshal(doc.Object)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "schedule.yaml")
		if err := os.WriteFile(p, out, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, code := sandboxtest.Kubectl(t, env, "apply", "-f", p); code != 0 {
			t.Fatalf("kubectl apply (exit %d): %s", code, out)
		}
	}
	following := func(cron string) *v1alpha1.Schedule {
		t.Helper()
		var s *v1alpha1.Schedule
		sandboxtest.WaitFor(t, 10*time.Second, "the schedule to follow "+cron, func() bool {
			s = get(t, c, doc.GetName())
			r := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ScheduleReady)
			return s.Status.ObservedGeneration == s.Generation && r != nil && r.Status == metav1.ConditionTrue && r.Message == "following "+cron
		})
		return s
	}
	apply()
	t.Cleanup(func() {
		s := &v1alpha1.Schedule{ObjectMeta: metav1.ObjectMeta{Namespace: doc.GetNamespace(), Name: doc.GetName()}}
		_ = c.Delete(context.Background(), s, client.PropagationPolicy(metav1.DeletePropagationForeground))
		sandboxtest.WaitFor(t, 2*time.Minute, "the schedule's experiments to be gone", func() bool { return len(runs(t, c, s.Name)) == 0 })
	})
	s := following("0 3 * * 1")
	before := s.Spec.DeepCopy()

	if err := unstructured.SetNestedField(doc.Object, "30 4 * * *", "spec", "schedule"); err != nil {
		t.Fatal(err)
	}
	apply()
	s = following("30 4 * * *")
	if s.Spec.Schedule != "30 4 * * *" || s.Spec.Template.Gameday.Steps[0].Experiment.Safety != nil {
		t.Errorf("spec after the change: %+v", s.Spec)
	}
	if before.Schedule == s.Spec.Schedule {
		t.Fatal("the change did not reach the API server")
	}
	for _, mf := range s.ManagedFields {
		if mf.FieldsV1 != nil && strings.Contains(string(mf.FieldsV1.Raw), `"f:spec"`) && mf.Manager != "kubectl-client-side-apply" {
			t.Errorf("%s (%s) wrote the schedule's spec", mf.Manager, mf.Operation)
		}
	}

	// The first step's fault, 90s in the file, now 45s: the next run's
	// experiment carries it.
	steps[0].(map[string]any)["experiment"].(map[string]any)["faults"].([]any)[0].(map[string]any)["duration"] = "45s"
	if err := unstructured.SetNestedSlice(doc.Object, steps, "spec", "template", "gameday", "steps"); err != nil {
		t.Fatal(err)
	}
	apply()
	following("30 4 * * *")
	if out, code := sandboxtest.CLI(t, env, "schedule", "trigger", doc.GetName(), "-n", doc.GetNamespace()); code != 0 {
		t.Fatalf("faultline schedule trigger (exit %d): %s", code, out)
	}
	// The steps are dry runs, final at once: the next step's experiment may
	// be there too, and runs are listed by their generated names.
	first := steps[0].(map[string]any)["name"].(string)
	var run *v1alpha1.Experiment
	sandboxtest.WaitFor(t, 30*time.Second, "the triggered run's first step, "+first, func() bool {
		for _, e := range runs(t, c, doc.GetName()) {
			if e.Labels[v1alpha1.LabelScheduleStep] == first {
				run = &e
				return true
			}
		}
		return false
	})
	if d := run.Spec.Faults[0].Duration.Duration; d != 45*time.Second || !run.Spec.DryRun {
		t.Errorf("the run's fault lasts %s (dry run %v), want the changed template's 45s", d, run.Spec.DryRun)
	}
}

//go:build sandbox

package controller_test

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	cm "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"faultline.dev/faultline/deploy"
	chaosmeshcrds "faultline.dev/faultline/deploy/chaosmesh"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/chaosmesh"
	"faultline.dev/faultline/sandbox"
	"faultline.dev/faultline/sandbox/sandboxtest"
)

// chaosKube is a client that knows Chaos Mesh's kinds.
func chaosKube(t *testing.T, env *sandboxtest.Env) client.Client {
	t.Helper()
	return kube(t, env, cm.AddToScheme)
}

// chaosMeshServed waits until the API server serves all of Chaos Mesh's
// kinds the controller makes (want), or none of them (!want).
func chaosMeshServed(t *testing.T, env *sandboxtest.Env, want bool) {
	t.Helper()
	disc, err := discovery.NewDiscoveryClientForConfig(env.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	sandboxtest.WaitFor(t, time.Minute, "Chaos Mesh's kinds to be served: "+map[bool]string{true: "all", false: "none"}[want], func() bool {
		missing, err := chaosmesh.MissingCRDs(disc)
		if err != nil {
			return false
		}
		if want {
			return len(missing) == 0
		}
		return len(missing) == len(chaosmesh.Kinds())
	})
}

// deleteChaosMeshCRDs removes every CRD of deploy/chaosmesh/crds and waits
// until the API server no longer serves them.
func deleteChaosMeshCRDs(t *testing.T, env *sandboxtest.Env, c client.Client) {
	t.Helper()
	names, err := chaosmeshcrds.Names()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		crd := &unstructured.Unstructured{}
		crd.SetAPIVersion("apiextensions.k8s.io/v1")
		crd.SetKind("CustomResourceDefinition")
		crd.SetName(n)
		if err := c.Delete(context.Background(), crd); err != nil && !apierrors.IsNotFound(err) {
			t.Fatalf("delete CRD %s: %v", n, err)
		}
	}
	chaosMeshServed(t, env, false)
}

// chaosMemory is a MemoryPressure of 32Mi on the web pod of ns for d,
// under engine chaos-mesh.
func chaosMemory(ns string, d time.Duration) *v1alpha1.Experiment {
	size := resource.MustParse("32Mi")
	return &v1alpha1.Experiment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mem-" + rand.String(4)},
		Spec: v1alpha1.ExperimentSpec{
			Engine: v1alpha1.EngineChaosMesh,
			Targets: v1alpha1.Targets{Pods: &cm.PodSelectorSpec{GenericSelectorSpec: cm.GenericSelectorSpec{
				Namespaces: []string{ns}, LabelSelectors: map[string]string{"app": "web"}}}},
			Faults: []v1alpha1.Fault{{Name: "squeeze", Type: v1alpha1.FaultMemoryPressure, Duration: metav1.Duration{Duration: d},
				MemoryPressure: &v1alpha1.MemoryPressure{Size: &size, RampPerSecond: resource.MustParse("32Mi")}}},
			Objectives: []v1alpha1.Objective{{Name: "no container was OOM-killed", Expr: "oom.kills == 0"}},
		},
	}
}

// There is no Chaos Mesh controller in the sandbox: only its CRDs. The
// objects faultline makes are created and deleted and never acted on, so
// these tests prove faultline's side (what it creates, and that it always
// deletes it) and nothing of what Chaos Mesh would do; no fault is ever
// injected, and the verdict says so.
//
// It kills the controller and removes CRDs: on a sandbox of its own, with
// a real node for the pods it targets.
func TestChaosMeshEngineCreatesEachFaultsObjectAndAlwaysDeletesIt(t *testing.T) {
	sandboxtest.Parallel(t)
	env := sandboxtest.Own(t, "chaos", func(c *sandbox.Config) { c.RealNodes, c.IsolatedKwokNodes = 1, 0 })
	c := chaosKube(t, env)
	ctx := context.Background()
	cfg := env.State.Config
	t.Cleanup(func() { deleteChaosMeshCRDs(t, env, c) })

	ns := "cm-" + rand.String(5)
	applyWorkload(t, env, kube(t, env), renamedExample(t, "memory-oom-app.yaml", "oom", ns), ns)
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"app": "web"}); err != nil || len(pods.Items) != 1 {
		t.Fatalf("web pods of %s: %d (%v), want 1", ns, len(pods.Items), err)
	}
	pod := pods.Items[0].Name

	get := func(exp *v1alpha1.Experiment) bool { return c.Get(ctx, client.ObjectKeyFromObject(exp), exp) == nil }
	stress := func(exp *v1alpha1.Experiment) (*cm.StressChaos, bool) {
		var s cm.StressChaos
		err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: chaosmesh.Name(exp.Name, "squeeze")}, &s)
		return &s, err == nil
	}
	start := func(t *testing.T, d time.Duration) *v1alpha1.Experiment {
		t.Helper()
		exp := chaosMemory(ns, d)
		if err := c.Create(ctx, exp); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Delete(ctx, exp) })
		sandboxtest.WaitFor(t, 30*time.Second, "the StressChaos to be created", func() bool {
			_, ok := stress(exp)
			return ok
		})
		if !get(exp) || exp.Status.StartTime == nil {
			t.Fatalf("experiment %s has no start time: %+v", exp.Name, exp.Status)
		}
		return exp
	}

	t.Run("without Chaos Mesh's CRDs an engine chaos-mesh experiment ends in Error naming spec.engine", func(t *testing.T) {
		deleteChaosMeshCRDs(t, env, c)
		exp := chaosMemory(ns, 20*time.Second)
		if err := c.Create(ctx, exp); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Delete(ctx, exp) })
		sandboxtest.WaitFor(t, 30*time.Second, "the experiment to end", func() bool { return get(exp) && exp.Status.Phase.IsFinal() })
		if exp.Status.Phase != v1alpha1.PhaseError || exp.Status.Verdict != v1alpha1.VerdictError ||
			!strings.Contains(exp.Status.Message, "spec.engine: chaos-mesh needs Chaos Mesh's CRDs") {
			t.Fatalf("phase %s, verdict %s, message %q; want Error naming spec.engine", exp.Status.Phase, exp.Status.Verdict, exp.Status.Message)
		}
		t.Logf("message: %s", exp.Status.Message)
	})

	crds, err := chaosmeshcrds.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	if err := deploy.Apply(ctx, env.RESTConfig, crds); err != nil {
		t.Fatal(err)
	}
	chaosMeshServed(t, env, true)

	t.Run("a StressChaos with the fault's spec exists during the fault and is gone after its deadline", func(t *testing.T) {
		exp := start(t, 20*time.Second)
		s, _ := stress(exp)
		d, err := time.ParseDuration(ptrString(s.Spec.Duration))
		if err != nil || d <= 15*time.Second || d > 20*time.Second {
			t.Errorf("spec.duration %q, want what is left of 20s", ptrString(s.Spec.Duration))
		}
		if got := s.Spec.Selector.Pods[ns]; len(got) != 1 || got[0] != pod || s.Spec.Mode != cm.AllMode {
			t.Errorf("selector %+v mode %s, want exactly pod %s/%s", s.Spec.Selector, s.Spec.Mode, ns, pod)
		}
		if m := s.Spec.Stressors.MemoryStressor; m == nil || m.Size != "33554432B" {
			t.Errorf("memory stressor %+v, want 32Mi in bytes", m)
		}
		if s.Labels[v1alpha1.LabelExperiment] != string(exp.UID) || len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != exp.UID {
			t.Errorf("labels %v, owners %+v; want the experiment's", s.Labels, s.OwnerReferences)
		}
		created := s.CreationTimestamp.Sub(exp.Status.StartTime.Time)
		deadline := exp.Status.StartTime.Add(20 * time.Second)
		sandboxtest.WaitFor(t, time.Minute, "the StressChaos to be deleted", func() bool { _, ok := stress(exp); return !ok })
		t.Logf("StressChaos created %.1fs after the start with duration %s; gone %.1fs after the deadline", created.Seconds(), d, time.Since(deadline).Seconds())
		if time.Now().Before(deadline) {
			t.Errorf("StressChaos gone %.1fs before the deadline", time.Until(deadline).Seconds())
		}
		sandboxtest.WaitFor(t, 2*time.Minute, "the verdict", func() bool { return get(exp) && exp.Status.Phase.IsFinal() })
		// No Chaos Mesh controller: nothing reported the fault injected,
		// and the verdict must not pass on a fault that never happened.
		if exp.Status.Verdict != v1alpha1.VerdictError || !strings.Contains(exp.Status.Message, "never reported injected") {
			t.Errorf("verdict %s (%s), want Error: nothing injected", exp.Status.Verdict, exp.Status.Message)
		}
		if len(exp.Status.Records) != 1 || exp.Status.Records[0].Target != "StressChaos "+ns+"/"+s.Name || !strings.Contains(exp.Status.Records[0].Action, "create StressChaos") {
			t.Errorf("records %+v, want one for the StressChaos", exp.Status.Records)
		}
		t.Logf("phase %s, verdict %s: %s; record %+v", exp.Status.Phase, exp.Status.Verdict, exp.Status.Message, exp.Status.Records)
		for _, e := range exp.Status.Timeline {
			t.Logf("  %s %s: %s", e.Time.Format(time.TimeOnly), e.Reason, e.Message)
		}
	})

	t.Run("an abort mid-fault deletes the StressChaos at once", func(t *testing.T) {
		exp := start(t, 2*time.Minute)
		patch := client.MergeFrom(exp.DeepCopy())
		exp.Annotations = map[string]string{v1alpha1.AnnotationAbort: "true"}
		if err := c.Patch(ctx, exp, patch); err != nil {
			t.Fatal(err)
		}
		asked := time.Now()
		sandboxtest.WaitFor(t, 15*time.Second, "the StressChaos to be deleted on abort", func() bool { _, ok := stress(exp); return !ok })
		t.Logf("StressChaos gone %.1fs after the abort was asked", time.Since(asked).Seconds())
		sandboxtest.WaitFor(t, time.Minute, "the experiment to be Aborted", func() bool { return get(exp) && exp.Status.Phase == v1alpha1.PhaseAborted })
	})

	t.Run("a controller down at the fault's start creates the StressChaos late, for what is left of the fault", func(t *testing.T) {
		exp := chaosMemory(ns, 20*time.Second)
		exp.Spec.Faults[0].StartAfter = &metav1.Duration{Duration: 8 * time.Second}
		if err := c.Create(ctx, exp); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Delete(ctx, exp) })
		sandboxtest.WaitFor(t, 30*time.Second, "the experiment to be planned", func() bool { return get(exp) && exp.Status.StartTime != nil })
		if err := sandbox.Kill(cfg, sandbox.ControllerComponent, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		faultStart := exp.Status.StartTime.Add(8 * time.Second)
		deadline := faultStart.Add(20 * time.Second)
		time.Sleep(time.Until(faultStart.Add(7 * time.Second)))
		if _, ok := stress(exp); ok {
			t.Fatal("a StressChaos exists with its controller dead since before the fault's start")
		}
		if _, err := sandbox.Restart(cfg, sandbox.ControllerComponent); err != nil {
			t.Fatal(err)
		}
		var s *cm.StressChaos
		sandboxtest.WaitFor(t, 30*time.Second, "the restarted controller to create the StressChaos", func() bool {
			var ok bool
			s, ok = stress(exp)
			return ok
		})
		d, err := time.ParseDuration(ptrString(s.Spec.Duration))
		// It ends at the fault's deadline (creation times have whole
		// seconds): neither the full 20s nor less than what was left.
		if end := s.CreationTimestamp.Add(d); err != nil || d > 14*time.Second || end.Sub(deadline).Abs() > 2*time.Second {
			t.Errorf("spec.duration %q created %s: it ends %s, want at most the 13s left at the restart, ending at the deadline %s",
				ptrString(s.Spec.Duration), s.CreationTimestamp.Format(time.RFC3339), s.CreationTimestamp.Add(d).Format(time.RFC3339), deadline.Format(time.RFC3339))
		}
		t.Logf("StressChaos created %.1fs after the fault's start with duration %s", s.CreationTimestamp.Sub(faultStart).Seconds(), d)
		sandboxtest.WaitFor(t, time.Minute, "the StressChaos to be deleted", func() bool { _, ok := stress(exp); return !ok })
		t.Logf("gone %.1fs after the deadline", time.Since(deadline).Seconds())
		sandboxtest.WaitFor(t, 2*time.Minute, "the experiment to end", func() bool { return get(exp) && exp.Status.Phase.IsFinal() })
		if len(exp.Status.Records) != 1 || !strings.Contains(exp.Status.Records[0].Action, "after the fault's start, shortened from 20s") {
			t.Errorf("records %+v, want the action to say it was created late and shortened", exp.Status.Records)
		}
		t.Logf("action: %s", exp.Status.Records[0].Action)
	})

	t.Run("a controller killed with -9 mid-fault: the restarted one deletes the StressChaos", func(t *testing.T) {
		exp := start(t, 20*time.Second)
		if err := sandbox.Kill(cfg, sandbox.ControllerComponent, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		deadline := exp.Status.StartTime.Add(20 * time.Second)
		// Past the deadline with no controller: nothing else deletes it
		// (here no Chaos Mesh ends it either).
		time.Sleep(time.Until(deadline.Add(3 * time.Second)))
		if _, ok := stress(exp); !ok {
			t.Fatal("the StressChaos is gone with its controller dead: something else deleted it")
		}
		if _, err := sandbox.Restart(cfg, sandbox.ControllerComponent); err != nil {
			t.Fatal(err)
		}
		restarted := time.Now()
		sandboxtest.WaitFor(t, time.Minute, "the restarted controller to delete the StressChaos", func() bool { _, ok := stress(exp); return !ok })
		t.Logf("StressChaos gone %.1fs after the restart (%.1fs after the deadline)", time.Since(restarted).Seconds(), time.Since(deadline).Seconds())
		sandboxtest.WaitFor(t, 2*time.Minute, "the experiment to end", func() bool { return get(exp) && exp.Status.Phase.IsFinal() })
		t.Logf("phase %s, verdict %s", exp.Status.Phase, exp.Status.Verdict)
	})

	t.Run("a Rollout's action is a PodChaos on the pod chosen at its point, deleted at the deadline", func(t *testing.T) {
		chaosRolloutSubtest(t, c, ns)
	})
}

// Last: it rolls the web Deployment the others target.
func chaosRolloutSubtest(t *testing.T, c client.Client, ns string) {
	ctx := context.Background()
	exp := &v1alpha1.Experiment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "roll-" + rand.String(4)},
		Spec: v1alpha1.ExperimentSpec{
			Engine:  v1alpha1.EngineChaosMesh,
			Targets: v1alpha1.Targets{Deployment: "web"},
			Faults: []v1alpha1.Fault{{Name: "kill", Type: v1alpha1.FaultRollout, Duration: metav1.Duration{Duration: 30 * time.Second},
				Rollout: &v1alpha1.Rollout{Trigger: &v1alpha1.RolloutTrigger{Restart: true}, At: v1alpha1.RolloutPoint{NewReady: ptrInt32(1)},
					Action: &v1alpha1.RolloutAction{Pods: "New", Method: "Delete"}}}},
		},
	}
	if err := c.Create(ctx, exp); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(ctx, exp) })
	var pc cm.PodChaos
	key := client.ObjectKey{Namespace: ns, Name: chaosmesh.Name(exp.Name, "kill")}
	sandboxtest.WaitFor(t, time.Minute, "the PodChaos at the rollout's point", func() bool { return c.Get(ctx, key, &pc) == nil })
	// The status says so in the write that follows the creation.
	sandboxtest.WaitFor(t, 10*time.Second, "the status to say the point is reached", func() bool {
		return c.Get(ctx, client.ObjectKeyFromObject(exp), exp) == nil && len(exp.Status.Rollouts) == 1 && exp.Status.Rollouts[0].PointAt != nil
	})
	// The pod chosen at the point: the Ready pod of the new ReplicaSet.
	var p corev1.Pod
	names := pc.Spec.Selector.Pods[ns]
	if len(names) != 1 || c.Get(ctx, client.ObjectKey{Namespace: ns, Name: names[0]}, &p) != nil ||
		!strings.HasPrefix(p.Name, "web-"+exp.Status.Rollouts[0].NewReplicaSet[len("web-"):]) {
		t.Errorf("PodChaos on %v, want the new ReplicaSet %s's pod", names, exp.Status.Rollouts[0].NewReplicaSet)
	}
	if pc.Spec.Action != cm.PodKillAction || pc.Spec.GracePeriod != 2 {
		t.Errorf("PodChaos %s with grace %d, want pod-kill with the Deployment's 2s", pc.Spec.Action, pc.Spec.GracePeriod)
	}
	t.Logf("PodChaos on %v (%s, grace %ds, duration %s) created %.1fs after the point", names, pc.Spec.Action, pc.Spec.GracePeriod, ptrString(pc.Spec.Duration),
		pc.CreationTimestamp.Sub(exp.Status.Rollouts[0].PointAt.Time).Seconds())
	deadline := exp.Status.StartTime.Add(30 * time.Second)
	sandboxtest.WaitFor(t, time.Minute, "the PodChaos to be deleted", func() bool { return apierrors.IsNotFound(c.Get(ctx, key, &pc)) })
	t.Logf("PodChaos gone %.1fs after the deadline", time.Since(deadline).Seconds())
}

func ptrInt32(n int32) *int32 { return &n }

func ptrString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

//go:build sandbox

package controller_test

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/catalog"
	"faultline.dev/faultline/experiments/controller"
	"faultline.dev/faultline/sandbox"
	"faultline.dev/faultline/sandbox/sandboxtest"
)

// preemptionRun applies a variant of the catalog's priority preemption
// into a namespace of its own and returns its experiment, with the
// fault's duration set to d.
func preemptionRun(t *testing.T, env *sandboxtest.Env, c client.Client, variant string, d time.Duration) *v1alpha1.Experiment {
	t.Helper()
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	s, err := cat.Get("priority-preemption")
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.Variant(variant)
	if err != nil {
		t.Fatal(err)
	}
	run, err := s.Prepare(v, "preempt-"+variant+"-"+rand.String(4), catalog.Bindings{})
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, o := range run.Workload {
		b, err := json.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	applyWorkload(t, env, c, strings.Join(docs, "\n"), run.Namespace)
	run.Experiment.Spec.Faults[0].Duration.Duration = d
	return run.Experiment
}

func deployment(t *testing.T, c client.Client, ns, name string) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

// The scheduler, not faultline, preempts: faultline only scales the burst
// and measures. What must hold whatever happens to the controller is that
// the burst is scaled back.
// It kills the controller: on a sandbox of its own, whose kwok-1 holds
// both departments.
func TestASurgeOfCriticalPodsPreemptsTheOtherDepartmentAndIsAlwaysScaledBack(t *testing.T) {
	sandboxtest.Parallel(t)
	env := sandboxtest.Own(t, "surge", nil)
	c := kube(t, env)
	ctx := context.Background()
	cfg := env.State.Config

	t.Run("a controller killed with -9 mid-surge: the new one scales the burst back from the Deployment's mark and judges the preemptions", func(t *testing.T) {
		exp := preemptionRun(t, env, c, "fragile", 40*time.Second)
		ns := exp.Namespace
		// Server-side apply, as GitOps tools write: it takes a name.
		exp.Name, exp.GenerateName = exp.GenerateName+"ssa", ""
		manifest, err := yaml.Marshal(exp)
		if err != nil {
			t.Fatal(err)
		}
		if out, code := sandboxtest.Kubectl(t, env, "apply", "--server-side", "-f", writeFile(t, string(manifest))); code != 0 {
			t.Fatalf("kubectl apply --server-side (exit %d): %s", code, out)
		}
		sandboxtest.WaitFor(t, time.Minute, "the scheduler to preempt four checkout pods for the burst", func() bool {
			if err := c.Get(ctx, client.ObjectKeyFromObject(exp), exp); err != nil {
				return false
			}
			n := 0
			for _, e := range exp.Status.Evictions {
				if e.Reason == "Preempted" {
					n++
				}
			}
			return n == 4
		})
		ml := deployment(t, c, ns, "ml-training")
		if ptr.Deref(ml.Spec.Replicas, 1) != 3 || !strings.Contains(ml.Annotations[controller.AnnotationSurge], `"replicas":0`) {
			t.Fatalf("ml-training mid-surge: replicas %d, annotations %v; want 3 and a mark of 0", ptr.Deref(ml.Spec.Replicas, 1), ml.Annotations)
		}
		if err := sandbox.Kill(cfg, sandbox.ControllerComponent, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// Past the fault's end with no controller: the burst is still there,
		// as nothing else knows to undo it.
		time.Sleep(time.Until(exp.Status.StartTime.Add(45 * time.Second)))
		if n := ptr.Deref(deployment(t, c, ns, "ml-training").Spec.Replicas, 1); n != 3 {
			t.Fatalf("ml-training has %d replicas with its controller dead, want the surge's 3", n)
		}
		if _, err := sandbox.Restart(cfg, sandbox.ControllerComponent); err != nil {
			t.Fatal(err)
		}
		sandboxtest.WaitFor(t, 3*time.Minute, "the restarted controller to finish the experiment", func() bool {
			return c.Get(ctx, client.ObjectKeyFromObject(exp), exp) == nil && exp.Status.Phase.IsFinal()
		})
		ml = deployment(t, c, ns, "ml-training")
		if n := ptr.Deref(ml.Spec.Replicas, 1); n != 0 || ml.Annotations[controller.AnnotationSurge] != "" {
			t.Errorf("ml-training after the experiment: %d replicas, annotations %v; want 0 and no mark", n, ml.Annotations)
		}
		if co := deployment(t, c, ns, "checkout"); co.Status.AvailableReplicas != 6 {
			t.Errorf("checkout has %d available pods after the experiment, want its 6 back", co.Status.AvailableReplicas)
		}
		if exp.Status.Verdict != v1alpha1.VerdictFailed {
			t.Errorf("verdict %s (%s), want Failed: checkout lost four pods", exp.Status.Verdict, exp.Status.Message)
		}
		if got := num(exp, "evictions.reasons.Preempted"); got != 4 {
			t.Errorf("evictions.reasons.Preempted = %v, want 4", got)
		}
		if len(exp.Status.Records) != 1 || exp.Status.Records[0].InjectedAt == nil || exp.Status.Records[0].RecoveredAt == nil ||
			!strings.Contains(exp.Status.Records[0].Action, "from 0 to 3 replicas") {
			t.Errorf("records %+v, want the surge injected and recovered", exp.Status.Records)
		}
		t.Logf("records %+v; measurements: preempted %v, checkout minAvailable %v", exp.Status.Records,
			exp.Status.Measurements["evictions.reasons.Preempted"], exp.Status.Measurements["workloads.byWorkload."+ns+"/checkout.minAvailable"])
	})

	t.Run("deleting the experiment mid-surge scales the burst back before the finalizer lets it go", func(t *testing.T) {
		exp := preemptionRun(t, env, c, "hardened", 10*time.Minute)
		ns := exp.Namespace
		if err := c.Create(ctx, exp); err != nil {
			t.Fatal(err)
		}
		sandboxtest.WaitFor(t, time.Minute, "the burst to be in place", func() bool {
			return ptr.Deref(deployment(t, c, ns, "ml-training").Spec.Replicas, 1) == 3
		})
		// The quota admits one critical pod; the ReplicaSet says why not
		// the others, and the record's effect carries it.
		sandboxtest.WaitFor(t, time.Minute, "the effect to name the quota", func() bool {
			return c.Get(ctx, client.ObjectKeyFromObject(exp), exp) == nil && len(exp.Status.Records) == 1 && strings.Contains(exp.Status.Records[0].Effect, "exceeded quota")
		})
		if err := c.Delete(ctx, exp); err != nil {
			t.Fatal(err)
		}
		sandboxtest.WaitFor(t, 30*time.Second, "the experiment to be gone (finalizer released)", func() bool {
			var e v1alpha1.Experiment
			return apierrors.IsNotFound(c.Get(ctx, client.ObjectKeyFromObject(exp), &e))
		})
		ml := deployment(t, c, ns, "ml-training")
		if n := ptr.Deref(ml.Spec.Replicas, 1); n != 0 || ml.Annotations[controller.AnnotationSurge] != "" {
			t.Errorf("ml-training after the deletion: %d replicas, annotations %v; want 0 and no mark", n, ml.Annotations)
		}
	})
}

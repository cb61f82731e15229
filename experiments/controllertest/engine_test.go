package controllertest

import (
	"context"
	"strings"
	"testing"
	"time"

	cm "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/chaosmesh"
)

// assignedTo lists the faults of the experiment in every node's
// FaultAssignment.
func assignedTo(t *testing.T, e *v1alpha1.Experiment) []v1alpha1.AssignedFault {
	t.Helper()
	var list v1alpha1.FaultAssignmentList
	if err := k8s.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	var out []v1alpha1.AssignedFault
	for _, fa := range list.Items {
		for _, f := range fa.Spec.Faults {
			if f.Experiment.UID == e.UID {
				out = append(out, f)
			}
		}
	}
	return out
}

// faultline's engine, whole: the faults go to each node's assignment, the
// agent acknowledges, injects and recovers them at their deadline, the
// objectives are judged, and the assignments go.
func TestTheDefaultEngineRunsAnExperimentToItsVerdict(t *testing.T) {
	node(t, "node-a")
	node(t, "node-b")
	e := experiment("default", onNodes("node-a", "node-b"), lasting(3*time.Second), objective("nodes.maxNotReadySeconds == 0"), objective("evictions.count == 0"))
	create(t, e)
	waitFor(t, e, 10*time.Second, "every agent to acknowledge", func(e *v1alpha1.Experiment) bool { return e.Status.Phase == v1alpha1.PhaseRunning })
	if got := assignedTo(t, e); len(got) != 2 || got[0].Deadline.Sub(got[0].StartAt.Time) != 3*time.Second {
		t.Fatalf("assigned %+v, want one fault of 3s on each node", got)
	}
	waitFor(t, e, 30*time.Second, "a verdict", final)
	if e.Status.Phase != v1alpha1.PhasePassed || e.Status.Verdict != v1alpha1.VerdictPassed {
		t.Errorf("%s/%s (%s), want Passed", e.Status.Phase, e.Status.Verdict, e.Status.Message)
	}
	for _, rec := range e.Status.Records {
		if rec.InjectedAt == nil || rec.RecoveredAt == nil {
			t.Errorf("record %+v: want injected and recovered", rec)
		}
	}
	for _, c := range []string{v1alpha1.ConditionAcknowledged, v1alpha1.ConditionRecovered, v1alpha1.ConditionReady} {
		if !meta.IsStatusConditionTrue(e.Status.Conditions, c) {
			t.Errorf("condition %s not True: %+v", c, e.Status.Conditions)
		}
	}
	waitFor(t, e, 10*time.Second, "the assignments to go", func(e *v1alpha1.Experiment) bool { return len(assignedTo(t, e)) == 0 })
}

// An abort and a deletion each recover every fault at once, long before
// its deadline.
func TestAnAbortAndADeletionRecoverEveryFaultAtOnce(t *testing.T) {
	ctx := context.Background()
	node(t, "node-a")
	t.Run("an abort ends the experiment Aborted, its faults recovered", func(t *testing.T) {
		e := experiment("default", onNodes("node-a"), lasting(time.Hour))
		create(t, e)
		waitFor(t, e, 10*time.Second, "the experiment to run", func(e *v1alpha1.Experiment) bool { return e.Status.Phase == v1alpha1.PhaseRunning })
		patch := client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"annotations":{"`+v1alpha1.AnnotationAbort+`":"true"}}}`))
		if err := k8s.Patch(ctx, e, patch); err != nil {
			t.Fatal(err)
		}
		waitFor(t, e, 15*time.Second, "the abort", final)
		if e.Status.Phase != v1alpha1.PhaseAborted || !meta.IsStatusConditionTrue(e.Status.Conditions, v1alpha1.ConditionAborted) {
			t.Errorf("%s (%s), want Aborted", e.Status.Phase, e.Status.Message)
		}
		for _, rec := range e.Status.Records {
			if rec.RecoveredAt == nil {
				t.Errorf("record %+v not recovered", rec)
			}
		}
	})
	t.Run("a deletion recovers the faults before the finalizer lets the experiment go", func(t *testing.T) {
		e := experiment("default", onNodes("node-a"), lasting(time.Hour))
		create(t, e)
		waitFor(t, e, 10*time.Second, "the experiment to run", func(e *v1alpha1.Experiment) bool { return e.Status.Phase == v1alpha1.PhaseRunning })
		if err := k8s.Delete(ctx, e); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			err := k8s.Get(ctx, client.ObjectKeyFromObject(e), e)
			if apierrors.IsNotFound(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the experiment is still there 15s after its deletion: %v %s", err, timeline(e))
			}
			time.Sleep(100 * time.Millisecond)
		}
		if left := assignedTo(t, e); len(left) > 0 {
			t.Errorf("faults still assigned after the finalizer let go: %+v", left)
		}
	})
}

// Chaos Mesh's engine, whole, with no Chaos Mesh controller: each fault's
// object exists from its start to its deadline, and the verdict says that
// nothing acted on it.
func TestTheChaosMeshEngineCreatesEachFaultsObjectAndDeletesItAtTheDeadline(t *testing.T) {
	ctx := context.Background()
	node(t, "node-a")
	ns := namespace(t, true, 1, "node-a")
	e := experiment(ns, onPods(ns), memory("32Mi"), lasting(3*time.Second), engine(v1alpha1.EngineChaosMesh))
	create(t, e)
	key := client.ObjectKey{Namespace: ns, Name: chaosmesh.Name(e.Name, "squeeze")}
	var s cm.StressChaos
	waitFor(t, e, 10*time.Second, "the StressChaos", func(*v1alpha1.Experiment) bool { return k8s.Get(ctx, key, &s) == nil })
	if got := s.Spec.Stressors; got == nil || got.MemoryStressor == nil || got.MemoryStressor.Size != "33554432B" {
		t.Errorf("stressors %+v, want a memory stressor of 32Mi (33554432B)", got)
	}
	waitFor(t, e, 30*time.Second, "a verdict", final)
	if err := k8s.Get(ctx, key, &s); !apierrors.IsNotFound(err) {
		t.Errorf("the StressChaos is still there after the experiment: %v", err)
	}
	if e.Status.Verdict != v1alpha1.VerdictError || !strings.Contains(e.Status.Message, "never reported injected") {
		t.Errorf("verdict %s (%s), want Error: no Chaos Mesh controller ever injected it", e.Status.Verdict, e.Status.Message)
	}
}

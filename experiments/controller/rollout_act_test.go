package controller

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// The pods are chosen, and the choice written, before the action; an
// action retried after its status write was lost (a pass that worked from
// a stale copy, a conflict) takes the same pods, with one record and one
// assigned fault each, even when the first action made them unready.
func TestARolloutsActionIsDoneOnceOnThePodsItChose(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	yes := true
	pod := func(name string, ready bool) *corev1.Pod {
		st := corev1.ConditionTrue
		if !ready {
			st = corev1.ConditionFalse
		}
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: "uid-" + "name",
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-old", UID: "web-old", Controller: &yes}}},
			Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "web"}}},
			Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}},
				ContainerStatuses: []corev1.ContainerStatus{{Name: "web", ContainerID: "containerd://" + name, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
		}
	}
	st := metav1.NewTime(t0)
	exp := &v1alpha1.Experiment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "roll", UID: "exp-1"},
		Spec: v1alpha1.ExperimentSpec{Targets: v1alpha1.Targets{Deployment: "web"},
			Faults: []v1alpha1.Fault{{Name: "term", Type: v1alpha1.FaultRollout, Duration: metav1.Duration{Duration: time.Minute}, Rollout: &v1alpha1.Rollout{}}}},
		Status: v1alpha1.ExperimentStatus{StartTime: &st},
	}
	c := fake.NewClientBuilder().WithScheme(chaosScheme(t)).WithObjects(exp, pod("web-old-1", true), pod("web-old-2", true)).
		WithStatusSubresource(&v1alpha1.Experiment{}, &v1alpha1.FaultAssignment{}).Build()
	r := &ExperimentReconciler{Client: c, Reader: c, Clock: clocktesting.NewFakeClock(t0.Add(20 * time.Second)), AgentNamespace: v1alpha1.DefaultAgentNamespace}
	ctx := context.Background()
	newRS := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-new", UID: "web-new"}}
	oldRS := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-old", UID: "web-old"}}
	f := &exp.Spec.Faults[0]
	if err := r.act(ctx, exp, f, rolloutRecord(exp, f), newRS, []*appsv1.ReplicaSet{oldRS}, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	rec := exp.Status.Rollouts[0]
	if rec.PointAt == nil || len(rec.Chosen) != 1 || (rec.Chosen[0] != "shop/web-old-1" && rec.Chosen[0] != "shop/web-old-2") {
		t.Fatalf("after the action: point %v, chosen %v; want the point reached on one of the two", rec.PointAt, rec.Chosen)
	}
	if exp.Status.TargetSeed == nil {
		t.Error("one pod of two chosen at random, and no seed recorded")
	}
	chosen := rec.Chosen[0]
	// The status write after the action is lost: the next pass sees the
	// choice (written before the action) and no point, and the signalled
	// pod is no longer Ready.
	exp.Status.Rollouts[0].PointAt = nil
	if err := c.Update(ctx, pod(chosen[len("shop/"):], false)); err != nil {
		t.Fatal(err)
	}
	if err := r.act(ctx, exp, f, &exp.Status.Rollouts[0], newRS, []*appsv1.ReplicaSet{oldRS}, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if len(exp.Status.Records) != 1 || exp.Status.Records[0].Target != chosen || exp.Status.Records[0].Error != "" {
		t.Errorf("records %+v, want one, on %s, without error", exp.Status.Records, chosen)
	}
	var fas v1alpha1.FaultAssignmentList
	if err := c.List(ctx, &fas); err != nil {
		t.Fatal(err)
	}
	if len(fas.Items) != 1 || len(fas.Items[0].Spec.Faults) != 1 || fas.Items[0].Spec.Faults[0].Target != chosen {
		t.Errorf("assignments %+v, want one fault, on %s", fas.Items, chosen)
	}
}

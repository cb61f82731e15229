package controller

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

func TestReadySaysWhetherTheControllerCanMoveTheExperimentAlong(t *testing.T) {
	old := metav1.NewTime(time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC))
	ready := func(status metav1.ConditionStatus, reason string) *metav1.Condition {
		return &metav1.Condition{Type: v1alpha1.ConditionReady, Status: status, Reason: reason, LastTransitionTime: old}
	}
	tests := map[string]struct {
		phase     v1alpha1.Phase
		prev      *metav1.Condition
		setByStep *metav1.Condition
		err       error
		want      metav1.ConditionStatus
		reason    string
		keepTime  bool
	}{
		"a step that went through is Ready and Progressing": {phase: v1alpha1.PhaseRunning, want: metav1.ConditionTrue, reason: v1alpha1.ReasonProgressing},
		"a step that failed is not Ready, with the reason its error carries": {phase: v1alpha1.PhaseInjecting, prev: ready(metav1.ConditionTrue, v1alpha1.ReasonProgressing),
			err: stepError(v1alpha1.ReasonTargetGone, errors.New("gone")), want: metav1.ConditionFalse, reason: v1alpha1.ReasonTargetGone},
		"an error without a reason is StepFailed":         {phase: v1alpha1.PhasePending, err: errors.New("boom"), want: metav1.ConditionFalse, reason: v1alpha1.ReasonStepFailed},
		"a problem a step set and went past stays shown":  {phase: v1alpha1.PhaseRunning, setByStep: ready(metav1.ConditionFalse, "RolloutError"), want: metav1.ConditionFalse, reason: "RolloutError"},
		"a stall that cleared is Ready again":             {phase: v1alpha1.PhaseRunning, prev: ready(metav1.ConditionFalse, v1alpha1.ReasonStepFailed), want: metav1.ConditionTrue, reason: v1alpha1.ReasonProgressing},
		"an end in Error keeps the reason it failed with": {phase: v1alpha1.PhaseError, prev: ready(metav1.ConditionFalse, "Refused"), want: metav1.ConditionFalse, reason: "Refused", keepTime: true},
		"a verdict is Ready and Finished":                 {phase: v1alpha1.PhaseFailed, want: metav1.ConditionTrue, reason: v1alpha1.ReasonFinished},
		"the transition time holds while the status does": {phase: v1alpha1.PhaseRunning, prev: ready(metav1.ConditionTrue, v1alpha1.ReasonProgressing), want: metav1.ConditionTrue, reason: v1alpha1.ReasonProgressing, keepTime: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			exp := &v1alpha1.Experiment{Status: v1alpha1.ExperimentStatus{Phase: tc.phase}}
			if tc.prev != nil {
				exp.Status.Conditions = []metav1.Condition{*tc.prev}
			}
			prev := takeReady(exp)
			if meta.FindStatusCondition(exp.Status.Conditions, v1alpha1.ConditionReady) != nil {
				t.Fatal("takeReady left the condition for the step")
			}
			if tc.setByStep != nil {
				set := *tc.setByStep
				set.LastTransitionTime = metav1.Now()
				exp.Status.Conditions = append(exp.Status.Conditions, set)
			}
			settleReady(exp, prev, tc.err)
			c := meta.FindStatusCondition(exp.Status.Conditions, v1alpha1.ConditionReady)
			if c == nil || c.Status != tc.want || c.Reason != tc.reason {
				t.Fatalf("Ready = %+v, want %s with reason %s", c, tc.want, tc.reason)
			}
			if kept := c.LastTransitionTime.Equal(&old); kept != tc.keepTime {
				t.Errorf("transition time %s, kept %v, want kept %v", c.LastTransitionTime, kept, tc.keepTime)
			}
		})
	}
}

func TestTheFinalizerIsPatchedAloneAndARefusalIsShown(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = v1alpha1.AddToScheme(scheme)
	exp := &v1alpha1.Experiment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cut", ResourceVersion: "7"},
		Spec: v1alpha1.ExperimentSpec{Targets: v1alpha1.Targets{Nodes: &v1alpha1.NodeTargets{Names: []string{"n1"}}},
			Faults: []v1alpha1.Fault{{Name: "cut", Type: v1alpha1.FaultNetworkLoss, Duration: metav1.Duration{Duration: 90 * time.Second}, NetworkLoss: &v1alpha1.NetworkLoss{LossPercent: 100}}}},
	}
	var sent []byte
	refusal := errors.New(`Experiment.faultline.dev "cut" is invalid: spec: Invalid value: spec is immutable`)
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(exp).WithStatusSubresource(exp).WithInterceptorFuncs(interceptor.Funcs{
		Patch: func(ctx context.Context, cl client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			sent, _ = patch.Data(obj)
			return refusal
		},
		Update: func(context.Context, client.WithWatch, client.Object, ...client.UpdateOption) error {
			t.Error("the controller sent a full update of the experiment")
			return nil
		},
	}).Build()
	rec := record.NewFakeRecorder(10)
	r := &ExperimentReconciler{Client: c, Reader: c, Recorder: rec}
	cur := exp.DeepCopy()
	_, err := r.reconcile(context.Background(), cur)
	if err == nil || !strings.Contains(err.Error(), "spec is immutable") {
		t.Fatalf("reconcile: %v, want the refusal", err)
	}
	var patch map[string]any
	if err := json.Unmarshal(sent, &patch); err != nil {
		t.Fatalf("patch %s: %v", sent, err)
	}
	md, _ := patch["metadata"].(map[string]any)
	if len(patch) != 1 || md == nil || md["resourceVersion"] != "7" || md["finalizers"] == nil || len(md) != 2 {
		t.Errorf("patch %s, want only metadata.finalizers under resourceVersion 7", sent)
	}
	if len(cur.Finalizers) != 0 {
		t.Errorf("a refused finalizer is kept in memory: %v", cur.Finalizers)
	}
	r.stalled(context.Background(), cur, err)
	select {
	case e := <-rec.Events:
		if !strings.Contains(e, "Warning "+v1alpha1.ReasonFinalizerNotSet) || !strings.Contains(e, "spec is immutable") {
			t.Errorf("event %q, want a FinalizerNotSet warning quoting the API server", e)
		}
	default:
		t.Error("no event")
	}
}

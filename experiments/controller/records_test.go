package controller

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// A record's effect is never older than its state: reports may come out of
// order (a cache that lags behind a read from the API server), and a
// stale one must not bring back what the fault did before it ended.
func TestARecordsEffectIsNeverOlderThanItsState(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	at := func(s int) *metav1.Time { x := metav1.NewTime(t0.Add(time.Duration(s) * time.Second)); return &x }
	injected := func(msg string) v1alpha1.AssignedFaultStatus {
		return v1alpha1.AssignedFaultStatus{ID: "f1", State: v1alpha1.FaultInjected, InjectedAt: at(1), Message: msg}
	}
	recovered := func(msg string) v1alpha1.AssignedFaultStatus {
		return v1alpha1.AssignedFaultStatus{ID: "f1", State: v1alpha1.FaultRecovered, InjectedAt: at(1), RecoveredAt: at(60), Message: msg}
	}
	tests := map[string]struct {
		reports    []v1alpha1.AssignedFaultStatus
		wantEffect string
		// wantLast is the timeline's last reason.
		wantLast string
	}{
		"effects follow the fault as it goes on": {
			reports:    []v1alpha1.AssignedFaultStatus{injected("ramping: 100 MiB"), injected("holding its 676 MiB target resident")},
			wantEffect: "holding its 676 MiB target resident", wantLast: v1alpha1.ReasonFaultEffect,
		},
		"the effect read just before the recovery comes before it in the timeline": {
			reports:    []v1alpha1.AssignedFaultStatus{injected("ramping: 100 MiB"), recovered("stressor ended at 678 MiB")},
			wantEffect: "stressor ended at 678 MiB", wantLast: v1alpha1.ReasonRecovered,
		},
		"a report older than the recovery changes nothing": {
			reports:    []v1alpha1.AssignedFaultStatus{injected("ramping: 100 MiB"), recovered("stressor ended at 678 MiB"), injected("holding its 676 MiB target resident")},
			wantEffect: "stressor ended at 678 MiB", wantLast: v1alpha1.ReasonRecovered,
		},
		"a report older than the injection changes nothing": {
			reports:    []v1alpha1.AssignedFaultStatus{injected("holding"), {ID: "f1", State: v1alpha1.FaultPending, Message: "waiting for its start"}},
			wantEffect: "holding", wantLast: v1alpha1.ReasonFaultEffect,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := &ExperimentReconciler{Clock: clocktesting.NewFakeClock(t0)}
			exp := &v1alpha1.Experiment{}
			for _, s := range tc.reports {
				fa := v1alpha1.FaultAssignment{
					Spec:   v1alpha1.FaultAssignmentSpec{NodeName: "n1", Faults: []v1alpha1.AssignedFault{{ID: "f1", Fault: "mem", Type: v1alpha1.FaultMemoryPressure, Target: "n1", Deadline: *at(60)}}},
					Status: v1alpha1.FaultAssignmentStatus{Faults: []v1alpha1.AssignedFaultStatus{s}},
				}
				r.syncRecords(context.Background(), exp, []v1alpha1.FaultAssignment{fa})
			}
			rec := exp.Status.Records[0]
			if rec.Effect != tc.wantEffect {
				t.Errorf("effect %q, want %q", rec.Effect, tc.wantEffect)
			}
			tl := exp.Status.Timeline
			if last := tl[len(tl)-1]; last.Reason != tc.wantLast {
				t.Errorf("the timeline ends with %s (%s), want %s; timeline %+v", last.Reason, last.Message, tc.wantLast, tl)
			}
		})
	}
}

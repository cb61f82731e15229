package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// surgeDeployment builds the surged Deployment; options change it.
func surgeDeployment(opts ...func(*appsv1.Deployment)) *appsv1.Deployment {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "dept", Name: "ml"}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1)}}
	for _, o := range opts {
		o(d)
	}
	return d
}

func withMark(v string) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) { d.Annotations = map[string]string{AnnotationSurge: v} }
}

func withReplicas(n int32) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To(n) }
}

func TestASurgeScalesUpForItsDurationAndAlwaysBack(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	const mine = `{"experiment":"exp-1","fault":"burst","replicas":1,"surge":4}`
	tests := map[string]struct {
		deployment *appsv1.Deployment
		other      bool          // the experiment of the mark exp-2 exists
		injected   bool          // the record says the surge began
		at         time.Duration // clock after the start
		end        bool          // endSurges, as on abort or deletion
		wantReps   int32
		wantMark   bool
		want       string // in the record's action, effect or error
		wantError  bool
		wantDone   bool // RecoveredAt set
	}{
		"before its start nothing changes": {deployment: surgeDeployment(), at: -time.Second, wantReps: 1},
		"at its start the Deployment is scaled and marked with what it had": {deployment: surgeDeployment(), at: time.Second, wantReps: 4, wantMark: true,
			want: "scale Deployment dept/ml from 1 to 4 replicas"},
		"a retry after a lost status write keeps the first mark's count": {deployment: surgeDeployment(withReplicas(4), withMark(mine)), at: time.Second, wantReps: 4, wantMark: true,
			want: "from 1 to 4"},
		"a Deployment another experiment surges is refused": {deployment: surgeDeployment(withMark(`{"experiment":"exp-2","fault":"other","replicas":1,"surge":9}`)), other: true, at: time.Second, wantReps: 1, wantMark: true,
			want: "already surged", wantError: true},
		"a mark whose experiment is gone is taken over, with its count to return to": {deployment: surgeDeployment(withReplicas(9), withMark(`{"experiment":"exp-2","fault":"other","replicas":1,"surge":9}`)), at: time.Second, wantReps: 4, wantMark: true,
			want: "from 1 to 4"},
		"a surge to fewer replicas than the Deployment has is refused, not a scale-down": {deployment: surgeDeployment(withReplicas(6)), at: time.Second, wantReps: 6,
			want: "surge.replicas: 4 is not above the 6 replicas", wantError: true},
		"at its end it is scaled back and the mark goes":                {deployment: surgeDeployment(withReplicas(4), withMark(mine)), injected: true, at: time.Minute, wantReps: 1, wantDone: true},
		"an abort scales it back before the end":                        {deployment: surgeDeployment(withReplicas(4), withMark(mine)), injected: true, at: 10 * time.Second, end: true, wantReps: 1, wantDone: true},
		"a count someone changed during the surge is theirs to keep":    {deployment: surgeDeployment(withReplicas(7), withMark(mine)), injected: true, at: time.Minute, wantReps: 7, wantDone: true},
		"a Deployment gone at the start is an error, not a silent pass": {at: time.Second, want: "is gone", wantError: true},
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b := fake.NewClientBuilder().WithScheme(scheme)
			if tc.deployment != nil {
				b = b.WithObjects(tc.deployment)
			}
			if tc.other {
				b = b.WithObjects(&v1alpha1.Experiment{ObjectMeta: metav1.ObjectMeta{Namespace: "dept", Name: "other", UID: "exp-2"}})
			}
			c := b.Build()
			clock := clocktesting.NewFakeClock(t0.Add(tc.at))
			r := &ExperimentReconciler{Client: c, Reader: c, Clock: clock}
			start := metav1.NewTime(t0)
			exp := &v1alpha1.Experiment{
				ObjectMeta: metav1.ObjectMeta{Namespace: "dept", Name: "burst", UID: "exp-1"},
				Spec: v1alpha1.ExperimentSpec{Targets: v1alpha1.Targets{Deployment: "ml"}, Faults: []v1alpha1.Fault{{
					Name: "burst", Type: v1alpha1.FaultSurge, Duration: metav1.Duration{Duration: 30 * time.Second}, Surge: &v1alpha1.Surge{Replicas: 4}}}},
				Status: v1alpha1.ExperimentStatus{StartTime: &start},
			}
			if tc.injected {
				t1 := metav1.NewTime(t0)
				exp.Status.Records = []v1alpha1.InjectionRecord{{Fault: "burst", Target: "dept/ml", InjectedAt: &t1}}
			}
			var err error
			if tc.end {
				err = r.endSurges(context.Background(), exp)
			} else {
				err = r.driveSurges(context.Background(), exp)
			}
			if err != nil {
				t.Fatal(err)
			}
			var got appsv1.Deployment
			if err := c.Get(context.Background(), client.ObjectKey{Namespace: "dept", Name: "ml"}, &got); err == nil {
				if n := ptr.Deref(got.Spec.Replicas, 1); n != tc.wantReps {
					t.Errorf("replicas %d, want %d", n, tc.wantReps)
				}
				if _, marked := got.Annotations[AnnotationSurge]; marked != tc.wantMark {
					t.Errorf("marked %v, want %v (%v)", marked, tc.wantMark, got.Annotations)
				}
			}
			if tc.at < 0 {
				if len(exp.Status.Records) != 0 {
					t.Errorf("records %+v before the start", exp.Status.Records)
				}
				return
			}
			if len(exp.Status.Records) != 1 {
				t.Fatalf("records %+v, want one", exp.Status.Records)
			}
			rec := exp.Status.Records[0]
			if all := rec.Action + " " + rec.Effect + " " + rec.Error; !strings.Contains(all, tc.want) {
				t.Errorf("record %+v, want %q in it", rec, tc.want)
			}
			if (rec.Error != "") != tc.wantError {
				t.Errorf("record error %q, want an error: %v", rec.Error, tc.wantError)
			}
			if (rec.RecoveredAt != nil) != tc.wantDone {
				t.Errorf("record %+v, want recovered: %v", rec, tc.wantDone)
			}
		})
	}
}

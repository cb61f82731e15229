package controller

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

func TestASignalWhosePodTheRolloutTookFirstIsSupersededNotBroken(t *testing.T) {
	const noProcess = "container abc: no process on this node"
	pod := func(opts ...func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-1", UID: "uid-1"}}
		for _, o := range opts {
			o(p)
		}
		return p
	}
	tests := map[string]struct {
		objects        []client.Object
		wantSuperseded bool
	}{
		"the pod is gone": {objects: nil, wantSuperseded: true},
		"the pod is terminating": {objects: []client.Object{pod(func(p *corev1.Pod) {
			now := metav1.Now()
			p.DeletionTimestamp, p.Finalizers = &now, []string{"test/keep"}
		})}, wantSuperseded: true},
		"another pod took the name":            {objects: []client.Object{pod(func(p *corev1.Pod) { p.UID = "uid-2" })}, wantSuperseded: true},
		"the pod is still there: a real error": {objects: []client.Object{pod()}, wantSuperseded: false},
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := &ExperimentReconciler{Client: fake.NewClientBuilder().WithScheme(scheme).WithObjects(tc.objects...).Build(), Clock: clocktesting.NewFakeClock(time.Now())}
			exp := &v1alpha1.Experiment{}
			fa := v1alpha1.FaultAssignment{
				Spec: v1alpha1.FaultAssignmentSpec{NodeName: "n1", Faults: []v1alpha1.AssignedFault{{ID: "f1", Fault: "sigterm", Type: v1alpha1.FaultRollout, Target: "shop/web-1", PodUID: types.UID("uid-1"),
					Signal: &v1alpha1.ContainerSignal{ContainerID: "containerd://abc", Signal: "SIGTERM"}}}},
				Status: v1alpha1.FaultAssignmentStatus{Faults: []v1alpha1.AssignedFaultStatus{{ID: "f1", State: v1alpha1.FaultFailed, Error: noProcess}}},
			}
			r.syncRecords(context.Background(), exp, []v1alpha1.FaultAssignment{fa})
			rec := exp.Status.Records[0]
			if got := rec.Superseded != ""; got != tc.wantSuperseded {
				t.Fatalf("record %+v: superseded %v, want %v", rec, got, tc.wantSuperseded)
			}
			if tc.wantSuperseded && rec.Error != "" {
				t.Errorf("a superseded signal keeps an error: %q", rec.Error)
			}
			if !tc.wantSuperseded && rec.Error != noProcess {
				t.Errorf("error %q, want the agent's", rec.Error)
			}
		})
	}
}

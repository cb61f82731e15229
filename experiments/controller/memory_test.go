package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

const mi = int64(1) << 20

// memoryFault is a MemoryPressure fault built from options.
func memoryFault(opts ...func(*v1alpha1.MemoryPressure)) v1alpha1.Fault {
	m := &v1alpha1.MemoryPressure{RampPerSecond: resource.MustParse("64Mi")}
	for _, o := range opts {
		o(m)
	}
	return v1alpha1.Fault{Name: "squeeze", Type: v1alpha1.FaultMemoryPressure, Duration: metav1.Duration{Duration: time.Minute}, MemoryPressure: m}
}

func size(q string) func(*v1alpha1.MemoryPressure) {
	return func(m *v1alpha1.MemoryPressure) { s := resource.MustParse(q); m.Size = &s }
}
func percent(p int32) func(*v1alpha1.MemoryPressure) {
	return func(m *v1alpha1.MemoryPressure) { m.Percent = p }
}
func pushPast(m *v1alpha1.MemoryPressure) { m.PushPastLimit = true }
func force(m *v1alpha1.MemoryPressure)    { m.Force = true }

func podWithLimit(limit string) *corev1.Pod {
	c := corev1.Container{Name: "web"}
	if limit != "" {
		c.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(limit)}
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-1"}, Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{c}}}
}

func TestMemoryFaultsAreSizedAgainstWhatBoundsThem(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}}}
	tests := map[string]struct {
		fault   v1alpha1.Fault
		pod     *corev1.Pod // nil: the node n1
		want    int64
		wantErr string
	}{
		"a size within a container's limit is kept":         {fault: memoryFault(size("100Mi")), pod: podWithLimit("128Mi"), want: 100 * mi},
		"a share of a container's limit is its bytes":       {fault: memoryFault(percent(50)), pod: podWithLimit("128Mi"), want: 64 * mi},
		"a share of a node's allocatable memory":            {fault: memoryFault(percent(66)), want: 1024 * mi * 66 / 100},
		"a size above a container's limit is refused":       {fault: memoryFault(size("200Mi")), pod: podWithLimit("128Mi"), wantErr: "spec.faults[squeeze].memoryPressure.size: 200Mi is above the memory limit of container web of pod shop/web-1 (128Mi)"},
		"a size above the limit is meant when pushing past": {fault: memoryFault(size("200Mi"), pushPast), pod: podWithLimit("128Mi"), want: 200 * mi},
		"a share of a container with no limit is refused":   {fault: memoryFault(percent(50)), pod: podWithLimit(""), wantErr: "spec.faults[squeeze].memoryPressure.percent: container web of pod shop/web-1 has no memory limit"},
		"a size for a container with no limit is kept":      {fault: memoryFault(size("100Mi")), pod: podWithLimit(""), want: 100 * mi},
		"a size above a node's allocatable is refused":      {fault: memoryFault(size("2Gi")), wantErr: "spec.faults[squeeze].memoryPressure.size: 2Gi is above the allocatable memory of node n1 (1Gi); set force: true"},
		"a size above a node's allocatable when forced":     {fault: memoryFault(size("2Gi"), force), want: 2048 * mi},
		"an unknown container is refused naming the field":  {fault: memoryFault(size("1Mi"), func(m *v1alpha1.MemoryPressure) { m.Container = "nope" }), pod: podWithLimit("128Mi"), wantErr: "spec.faults[squeeze].memoryPressure.container"},
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := &ExperimentReconciler{Client: fake.NewClientBuilder().WithScheme(scheme).WithObjects(node.DeepCopy()).Build()}
			exp := &v1alpha1.Experiment{Spec: v1alpha1.ExperimentSpec{Faults: []v1alpha1.Fault{tc.fault}}}
			tg := target{node: "n1", pod: tc.pod}
			plan, err := r.planMemory(context.Background(), exp, []target{tg})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := plan[memoryKey("squeeze", tg)]; got.SizeBytes != tc.want || got.RampBytesPerSecond != 64*mi {
				t.Errorf("planned %+v, want %d bytes at %d a second", got, tc.want, 64*mi)
			}
		})
	}
}

func TestAHoldEndsAMemoryFaultEarly(t *testing.T) {
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	a := v1alpha1.AssignedMemoryPressure{SizeBytes: 100 * mi, RampBytesPerSecond: 64 * mi}
	hold := func(d time.Duration) *v1alpha1.MemoryPressure {
		return &v1alpha1.MemoryPressure{Hold: &metav1.Duration{Duration: d}}
	}
	tests := map[string]struct {
		m    *v1alpha1.MemoryPressure
		want time.Time
	}{
		"without a hold the fault lasts its duration":     {m: &v1alpha1.MemoryPressure{}, want: at.Add(time.Minute)},
		"a hold ends it after the ramp, in whole seconds": {m: hold(10 * time.Second), want: at.Add(12 * time.Second)},
		"a hold longer than the duration changes nothing": {m: hold(time.Hour), want: at.Add(time.Minute)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := memoryDeadline(tc.m, a, at, time.Minute); !got.Equal(tc.want) {
				t.Errorf("deadline %s, want %s", got, tc.want)
			}
		})
	}
}

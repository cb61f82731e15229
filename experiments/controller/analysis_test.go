package controller

import (
	"context"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	chaosmeshv1alpha1 "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// memoryCluster is a node under memory pressure at start+30 s, its
// kubelet meeting the threshold at +35 s and evicting a pod at +40 s, and
// a container OOM-killed at +20 s.
func memoryCluster(start time.Time) []client.Object {
	at := func(d time.Duration) metav1.Time { return metav1.NewTime(start.Add(d)) }
	p := func(name, node string, opts ...func(*corev1.Pod)) *corev1.Pod {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Labels: map[string]string{"app": "web"}, CreationTimestamp: at(-time.Hour)},
			Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: corev1.PodRunning, QOSClass: corev1.PodQOSBestEffort}}
		for _, o := range opts {
			o(pod)
		}
		return pod
	}
	return []client.Object{
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastTransitionTime: at(-time.Hour)},
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionTrue, LastTransitionTime: at(30 * time.Second)}}}},
		p("p0", "n1"),
		p("p1", "n1", func(pod *corev1.Pod) {
			pod.Status = corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted", QOSClass: corev1.PodQOSBestEffort, Message: "The node was low on resource: memory. ",
				Conditions: []corev1.PodCondition{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "TerminationByKubelet", LastTransitionTime: at(40 * time.Second)}}}
		}),
		p("p2", "n2"),
		p("p3", "n1", func(pod *corev1.Pod) {
			pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", RestartCount: 1,
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled", FinishedAt: at(20 * time.Second)}}}}
		}),
		p("late", "n1", func(pod *corev1.Pod) { pod.CreationTimestamp = at(time.Minute) }),
		&corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "n1.threshold"}, Reason: "EvictionThresholdMet", Message: "Attempting to reclaim memory",
			InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: "n1"}, FirstTimestamp: at(35 * time.Second), LastTimestamp: at(35 * time.Second), Count: 1},
	}
}

func TestARunMeasuresMemoryPressureAndCarriesItOverARestart(t *testing.T) {
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	st := metav1.NewTime(start)
	exp := &v1alpha1.Experiment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "memory"},
		Spec:       v1alpha1.ExperimentSpec{Targets: v1alpha1.Targets{Nodes: &v1alpha1.NodeTargets{Names: []string{"n1"}}}},
		Status:     v1alpha1.ExperimentStatus{Phase: v1alpha1.PhasePending, StartTime: &st, Records: []v1alpha1.InjectionRecord{{Fault: "f", Target: "n1", Node: "n1"}}},
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(memoryCluster(start)...).Build()
	a := NewAnalysis()
	if err := a.Ensure(context.Background(), c, exp); err != nil {
		t.Fatal(err)
	}
	now := start.Add(2 * time.Minute)
	want := map[string]map[string]any{
		"oom":       {"kills": int64(1), "restarts": int64(1), "secondsToFirst": 20.0},
		"evictions": {"count": int64(1), "thresholdMet": int64(1), "workloadPods": int64(3), "workloadEvicted": int64(1), "orderKept": true, "bestEffortFirst": true},
		"nodes":     {"secondsToMemoryPressure": 30.0},
	}
	check := func(when string, m map[string]map[string]any) {
		t.Helper()
		for group, vals := range want {
			for k, v := range vals {
				if !reflect.DeepEqual(m[group][k], v) {
					t.Errorf("%s: %s.%s = %v, want %v", when, group, k, m[group][k], v)
				}
			}
		}
		if p := m["nodes"]["memoryPressure"].(map[string]any); p["count"] != int64(1) || p["longestSeconds"] != 90.0 {
			t.Errorf("%s: nodes.memoryPressure %v, want one span of 90 s so far", when, p)
		}
	}
	check("live", a.Measurements(exp, now))
	a.Snapshot(exp, now)
	if exp.Status.Measurements["evictions.order.00"] == "" || exp.Status.Measurements["oom.kills"] != "1" {
		t.Fatalf("status measurements %v", exp.Status.Measurements)
	}

	// The controller restarts; meanwhile the evicted pod and the killed
	// one were deleted.
	exp.Status.Phase = v1alpha1.PhaseRunning
	objs := memoryCluster(start)
	c = fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs[0], objs[1], objs[3], objs[5], objs[6]).Build()
	a = NewAnalysis()
	if err := a.Ensure(context.Background(), c, exp); err != nil {
		t.Fatal(err)
	}
	// Restarts are counted from the kills seen: that one is gone.
	delete(want["oom"], "restarts")
	check("after a restart", a.Measurements(exp, now))
}

func TestTheWorkloadOfPodTargets(t *testing.T) {
	start := time.Now().Truncate(time.Second)
	st := metav1.NewTime(start)
	exp := &v1alpha1.Experiment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "memory"},
		Spec: v1alpha1.ExperimentSpec{Targets: v1alpha1.Targets{Pods: &chaosmeshv1alpha1.PodSelectorSpec{
			GenericSelectorSpec: chaosmeshv1alpha1.GenericSelectorSpec{Namespaces: []string{"shop"}, LabelSelectors: map[string]string{"app": "web"}}}}},
		Status: v1alpha1.ExperimentStatus{StartTime: &st},
	}
	var pods []corev1.Pod
	for _, o := range memoryCluster(start.Add(-time.Hour)) {
		if p, ok := o.(*corev1.Pod); ok {
			pods = append(pods, *p)
		}
	}
	pods[2].Labels = map[string]string{"app": "db"}
	// p1 was evicted before the start, p2 is not selected: p0, p3, late.
	keys, size := workload(exp, pods, nil, time.Now())
	if !reflect.DeepEqual(keys, []string{"shop/p0", "shop/p3", "shop/late"}) || size != 0 {
		t.Errorf("workload %v (size %d), want p0, p3 and late", keys, size)
	}
}

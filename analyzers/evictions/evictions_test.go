package evictions

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func pod(ns, name, node, reason string, at time.Duration) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(ns + "/" + name)}, Spec: corev1.PodSpec{NodeName: node}}
	if reason != "" {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: reason, LastTransitionTime: metav1.NewTime(t0.Add(at))}}
	}
	return p
}

func TestEvictionsAreCountedByReasonNodeAndNamespace(t *testing.T) {
	tr := New(t0)
	tr.Observe(pod("a", "old", "n1", "DeletionByTaintManager", -time.Minute)) // before the window
	tr.Observe(pod("a", "calm", "n1", "", 0))                                 // not disrupted
	for i := range 5 {
		tr.Observe(pod("a", fmt.Sprintf("p%d", i), "n1", "DeletionByTaintManager", time.Duration(50+i)*time.Second))
	}
	tr.Observe(pod("a", "p0", "n1", "DeletionByTaintManager", 80*time.Second)) // seen again
	tr.Observe(pod("b", "q", "n2", "TerminationByKubelet", 3*time.Minute))
	tr.Observe(pod("b", "r", "n2", "PreemptionByScheduler", 3*time.Minute+10*time.Second))
	m := tr.Measure(t0.Add(4 * time.Minute))
	if m["count"] != int64(7) || m["peakPerMinute"] != int64(5) || m["nodes"] != int64(2) || m["namespaces"] != int64(2) {
		t.Errorf("measurements %v, want 7 evictions, peak 5 a minute, over 2 nodes and 2 namespaces", m)
	}
	reasons := m["reasons"].(map[string]any)
	if reasons[TaintManagerEviction] != int64(5) || reasons[Evicted] != int64(1) || reasons[Preempted] != int64(1) {
		t.Errorf("reasons %v", reasons)
	}
	if r := m["ratePerMinute"].(float64); r != 7.0/4 {
		t.Errorf("rate %v, want 1.75 a minute", r)
	}
}

func TestStripKeepsWhatTheTrackerNeeds(t *testing.T) {
	p := pod("a", "p", "n1", "DeletionByTaintManager", 0)
	p.Spec.Containers = []corev1.Container{{Name: "big", Image: "x", Env: make([]corev1.EnvVar, 100)}}
	p.Annotations = map[string]string{"huge": string(make([]byte, 10000))}
	obj, err := Strip(p)
	if err != nil {
		t.Fatal(err)
	}
	s := obj.(*corev1.Pod)
	if len(s.Spec.Containers) != 0 || s.Annotations != nil || s.Spec.NodeName != "n1" || len(s.Status.Conditions) != 1 {
		t.Errorf("stripped pod %+v", s)
	}
	tr := New(t0.Add(-time.Hour))
	tr.Observe(s)
	if tr.Measure(t0)["count"] != int64(1) {
		t.Error("a stripped pod is no longer counted")
	}
}

func TestEvictionsThatABudgetForbadeAreViolations(t *testing.T) {
	tr := New(t0)
	allowed := 1
	// A budget of one disruption: the first eviction uses it, the rest break it.
	tr.ViolatedPDB = func(*corev1.Pod) string {
		if allowed > 0 {
			allowed--
			return ""
		}
		return "keep-two"
	}
	for i := range 3 {
		tr.Observe(pod("a", fmt.Sprintf("p%d", i), "n1", "DeletionByTaintManager", time.Duration(i)*time.Second))
	}
	if got := tr.Measure(t0.Add(time.Minute))["pdbViolations"]; got != int64(2) {
		t.Errorf("pdbViolations = %v, want 2", got)
	}
}

func TestASeededEvictionIsNotCountedAgain(t *testing.T) {
	tr := New(t0)
	tr.Seed(Eviction{Namespace: "a", Pod: "p0", Node: "n1", Reason: TaintManagerEviction, At: t0.Add(time.Second)})
	tr.Observe(pod("a", "p0", "n1", "DeletionByTaintManager", time.Second))
	if got := tr.Measure(t0.Add(time.Minute))["count"]; got != int64(1) {
		t.Errorf("count = %v, want 1", got)
	}
}

func TestEventsAnnounceEvictionsOnce(t *testing.T) {
	tr := New(t0)
	ev := func(reason, msg, name string, at time.Duration) *corev1.Event {
		return &corev1.Event{Reason: reason, Message: msg, FirstTimestamp: metav1.NewTime(t0.Add(at)),
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "a", Name: name}}
	}
	tr.ObserveEvent(ev("TaintManagerEviction", "Marking for deletion Pod a/p0", "p0", time.Second))
	tr.ObserveEvent(ev("TaintManagerEviction", "Cancelling deletion of Pod a/p1", "p1", time.Second)) // not an eviction
	tr.ObserveEvent(ev("Evicted", "The node was low on resource: memory.", "p2", 2*time.Second))
	tr.ObserveEvent(ev("Preempted", "Preempted by pod x", "p3", 3*time.Second))
	tr.ObserveEvent(ev("Scheduled", "assigned", "p4", 3*time.Second))
	tr.Observe(pod("a", "p0", "n1", "DeletionByTaintManager", time.Second)) // the same eviction, from the pod
	m := tr.Measure(t0.Add(time.Minute))
	reasons := m["reasons"].(map[string]any)
	if m["count"] != int64(3) || reasons[TaintManagerEviction] != int64(1) || reasons[Evicted] != int64(1) || reasons[Preempted] != int64(1) {
		t.Errorf("measurements %v, want 3 evictions, one of each reason", m)
	}
}

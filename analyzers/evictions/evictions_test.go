package evictions

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func pod(ns, name, node, reason string, at time.Duration, opts ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(ns + "/" + name)}, Spec: corev1.PodSpec{NodeName: node}}
	if reason != "" {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: reason, LastTransitionTime: metav1.NewTime(t0.Add(at))}}
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// evicted is a kubelet eviction for pressure on resource, as the kubelet
// writes it: Failed, reason Evicted, and the DisruptionTarget condition.
func evicted(ns, name, node string, at time.Duration, qos corev1.PodQOSClass, priority int32, opts ...func(*corev1.Pod)) *corev1.Pod {
	return pod(ns, name, node, "TerminationByKubelet", at, append([]func(*corev1.Pod){qosClass(qos), withPriority(priority), lowOn("memory")}, opts...)...)
}

func qosClass(c corev1.PodQOSClass) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Status.QOSClass = c }
}

func withPriority(n int32) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Spec.Priority = &n }
}

func lowOn(resource string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.Phase, p.Status.Reason = corev1.PodFailed, Evicted
		p.Status.Message = "The node was low on resource: " + resource + ". Threshold quantity: 100Mi, available: 50Mi. "
	}
}

func created(at time.Duration) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(t0.Add(at)) }
}

// event builds an Event, the kubelet's when host is set.
func event(kind, name, reason, msg, host string, at time.Duration, opts ...func(*corev1.Event)) *corev1.Event {
	e := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name + "." + reason}, Reason: reason, Message: msg,
		FirstTimestamp: metav1.NewTime(t0.Add(at)), LastTimestamp: metav1.NewTime(t0.Add(at)), Count: 1, Source: corev1.EventSource{Host: host},
		InvolvedObject: corev1.ObjectReference{Kind: kind, Namespace: "a", Name: name}}
	if kind == "Node" {
		e.InvolvedObject.Namespace = ""
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

// repeatedUntil is the recorder folding repeats into the Event.
func repeatedUntil(count int32, last time.Duration) func(*corev1.Event) {
	return func(e *corev1.Event) { e.Count, e.LastTimestamp = count, metav1.NewTime(t0.Add(last)) }
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

func TestStripKeepsWhatTheOrderAndTheOOMKillsNeed(t *testing.T) {
	p := evicted("a", "p", "n1", time.Second, corev1.PodQOSBurstable, 100, created(-time.Hour))
	p.Status.ContainerStatuses = []corev1.ContainerStatus{
		{Name: "app", RestartCount: 2, Image: "x", LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled", FinishedAt: metav1.NewTime(t0)}}},
		{Name: "side", Image: "y", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
	}
	obj, _ := Strip(p)
	s := obj.(*corev1.Pod)
	if s.Status.QOSClass != corev1.PodQOSBurstable || s.Spec.Priority == nil || *s.Spec.Priority != 100 || !strings.Contains(s.Status.Message, "memory") ||
		!s.CreationTimestamp.Equal(&p.CreationTimestamp) {
		t.Errorf("stripped pod %+v, want its class, priority, message and creation kept", s)
	}
	if len(s.Status.ContainerStatuses) != 1 || s.Status.ContainerStatuses[0].RestartCount != 2 || s.Status.ContainerStatuses[0].LastTerminationState.Terminated == nil {
		t.Errorf("container statuses %+v, want only the OOM-killed one", s.Status.ContainerStatuses)
	}
	running := pod("a", "q", "n1", "", 0, qosClass(corev1.PodQOSBestEffort))
	running.Status.Message = "hello"
	running.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", Image: "x"}}
	obj, _ = Strip(running)
	if s := obj.(*corev1.Pod); s.Status.Message != "" || s.Status.ContainerStatuses != nil || s.Status.QOSClass != corev1.PodQOSBestEffort {
		t.Errorf("stripped running pod %+v, want no message and no container status", s.Status)
	}
	running.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}
	pending := pod("a", "r", "", "", 0)
	pending.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/3 nodes are available: 1 Insufficient cpu."}}
	obj, _ = Strip(running)
	pobj, _ := Strip(pending)
	if s, ps := obj.(*corev1.Pod), pobj.(*corev1.Pod); len(s.Status.Conditions) != 0 || len(ps.Status.Conditions) != 1 || ps.Status.Conditions[0].Message == "" {
		t.Errorf("conditions kept: running %+v, pending %+v; want the scheduler's reason on the pending pod only", s.Status.Conditions, ps.Status.Conditions)
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
	tr.ObserveEvent(ev("Preempted", "Preempted by pod 5d1c on node kwok-1", "p3", 3*time.Second))
	tr.ObserveEvent(ev("Scheduled", "assigned", "p4", 3*time.Second))
	tr.Observe(pod("a", "p0", "n1", "DeletionByTaintManager", time.Second)) // the same eviction, from the pod
	m := tr.Measure(t0.Add(time.Minute))
	reasons := m["reasons"].(map[string]any)
	if m["count"] != int64(3) || reasons[TaintManagerEviction] != int64(1) || reasons[Evicted] != int64(1) || reasons[Preempted] != int64(1) {
		t.Errorf("measurements %v, want 3 evictions, one of each reason", m)
	}
	// The scheduler's event has no host: its message names the node.
	if byNode := m["byNode"].(map[string]any); byNode["kwok-1"] != int64(1) {
		t.Errorf("byNode %v, want the preemption on kwok-1", byNode)
	}
}

func TestTheKubeletsEvictionOrder(t *testing.T) {
	const be, bu, g = corev1.PodQOSBestEffort, corev1.PodQOSBurstable, corev1.PodQOSGuaranteed
	s := time.Second
	for name, tc := range map[string]struct {
		evicted         []*corev1.Pod
		events          []*corev1.Event
		kept            bool
		bestEffortFirst bool
	}{
		"BestEffort, then Burstable, then Guaranteed by priority keeps the rule": {
			evicted: []*corev1.Pod{evicted("a", "be0", "n1", 10*s, be, 0), evicted("a", "be1", "n1", 20*s, be, 1000),
				evicted("a", "bu", "n1", 30*s, bu, 0), evicted("a", "g0", "n1", 40*s, g, 0), evicted("a", "g1", "n1", 50*s, g, 1000)},
			kept: true, bestEffortFirst: true,
		},
		"a Guaranteed pod evicted before a BestEffort one breaks it": {
			evicted: []*corev1.Pod{evicted("a", "g", "n1", 10*s, g, 1000), evicted("a", "be", "n1", 20*s, be, 1000)},
		},
		"a BestEffort pod of higher priority after a Burstable one is allowed": {
			evicted: []*corev1.Pod{evicted("a", "bu", "n1", 10*s, bu, 0), evicted("a", "be", "n1", 20*s, be, 1000)},
			kept:    true,
		},
		"a BestEffort pod of lower priority after a Burstable one breaks it": {
			evicted: []*corev1.Pod{evicted("a", "bu", "n1", 10*s, bu, 1000), evicted("a", "be", "n1", 20*s, be, 0)},
		},
		"a Guaranteed pod of higher priority before a lower one breaks it": {
			evicted:         []*corev1.Pod{evicted("a", "g1", "n1", 10*s, g, 1000), evicted("a", "g0", "n1", 20*s, g, 0)},
			bestEffortFirst: true,
		},
		"a Guaranteed pod before a Burstable one of no lower priority is allowed: it may have been within its requests": {
			evicted: []*corev1.Pod{evicted("a", "g", "n1", 10*s, g, 0), evicted("a", "bu", "n1", 20*s, bu, 0)},
			kept:    true, bestEffortFirst: true,
		},
		"Burstable pods are not compared with each other": {
			evicted: []*corev1.Pod{evicted("a", "bu1", "n1", 10*s, bu, 1000), evicted("a", "bu0", "n1", 20*s, bu, 0)},
			kept:    true, bestEffortFirst: true,
		},
		"a pod known only through an Event is skipped": {
			events:  []*corev1.Event{event("Pod", "x", Evicted, "The node was low on resource: memory. ", "n1", 5*s)},
			evicted: []*corev1.Pod{evicted("a", "be", "n1", 10*s, be, 0), evicted("a", "g", "n1", 20*s, g, 0)},
			kept:    true, bestEffortFirst: true,
		},
		"each node's order is judged apart": {
			evicted: []*corev1.Pod{evicted("a", "g", "n1", 10*s, g, 0), evicted("a", "be", "n2", 20*s, be, 0)},
			kept:    true, bestEffortFirst: true,
		},
		"a pod created after an eviction was not there to be ranked": {
			evicted: []*corev1.Pod{evicted("a", "g", "n1", 10*s, g, 0), evicted("a", "be", "n1", 20*s, be, 0, created(15*s))},
			kept:    true, bestEffortFirst: true,
		},
		"evictions for disk are not judged by the memory rule": {
			evicted: []*corev1.Pod{evicted("a", "g", "n1", 10*s, g, 0, lowOn("ephemeral-storage")), evicted("a", "be", "n1", 20*s, be, 0, lowOn("ephemeral-storage"))},
			kept:    true, bestEffortFirst: true,
		},
	} {
		t.Run(name, func(t *testing.T) {
			tr := New(t0)
			for _, e := range tc.events {
				tr.ObserveEvent(e)
			}
			for _, p := range tc.evicted {
				tr.Observe(p)
			}
			m := tr.Measure(t0.Add(time.Minute))
			if m["orderKept"] != tc.kept || m["bestEffortFirst"] != tc.bestEffortFirst {
				t.Errorf("orderKept %v, bestEffortFirst %v (%v), want %v, %v", m["orderKept"], m["bestEffortFirst"], m["orderBreach"], tc.kept, tc.bestEffortFirst)
			}
			if _, ok := m["orderBreach"]; ok == tc.kept {
				t.Errorf("orderBreach %q with orderKept %v", m["orderBreach"], tc.kept)
			}
		})
	}
}

func TestKubeletEvictionsAreListedInOrder(t *testing.T) {
	tr := New(t0)
	tr.ObserveEvent(event("Pod", "p1", Evicted, "The node was low on resource: memory. Container c was using 300Mi.", "n1", 20*time.Second))
	tr.Observe(evicted("a", "p0", "n1", 10*time.Second, corev1.PodQOSBestEffort, 0))
	tr.Observe(evicted("a", "p1", "n1", 20*time.Second, corev1.PodQOSBurstable, 5)) // also announced by its Event
	tr.Observe(pod("a", "down", "n1", "TerminationByKubelet", 30*time.Second, func(p *corev1.Pod) { p.Status.Reason = "Terminated" }))
	tr.Observe(pod("a", "tm", "n2", "DeletionByTaintManager", 40*time.Second))
	m := tr.Measure(t0.Add(time.Minute))
	want := []any{
		map[string]any{"namespace": "a", "pod": "p0", "node": "n1", "qosClass": "BestEffort", "priority": int64(0), "resource": "memory", "seconds": 10.0},
		map[string]any{"namespace": "a", "pod": "p1", "node": "n1", "qosClass": "Burstable", "priority": int64(5), "resource": "memory", "seconds": 20.0},
	}
	if !reflect.DeepEqual(m["order"], want) {
		t.Errorf("order %v, want %v", m["order"], want)
	}
	reasons := m["reasons"].(map[string]any)
	if m["count"] != int64(4) || reasons[Evicted] != int64(2) || reasons[NodeShutdown] != int64(1) {
		t.Errorf("count %v, reasons %v: want 4, two kubelet evictions and a node shutdown", m["count"], reasons)
	}
	if q := m["byQOSClass"].(map[string]any); q["BestEffort"] != int64(1) || q["Burstable"] != int64(1) {
		t.Errorf("byQOSClass %v", q)
	}
}

func TestAnEventOnlyEvictionTakesItsNodeFromTheKubelet(t *testing.T) {
	tr := New(t0)
	tr.ObserveEvent(event("Pod", "gone", Evicted, "The node was low on resource: memory. ", "n3", time.Second))
	l := tr.List()
	if len(l) != 1 || l[0].Node != "n3" || l[0].Resource != "memory" || l[0].QOSClass != "" {
		t.Errorf("evictions %+v, want one on n3 for memory, of unknown class", l)
	}
}

func TestThresholdMetEventsAreCountedByNode(t *testing.T) {
	tr := New(t0)
	msg := "Attempting to reclaim memory"
	// Seen once, then again as the recorder folds two repeats into it.
	tr.ObserveEvent(event("Node", "n1", EvictionThresholdMet, msg, "n1", 10*time.Second))
	tr.ObserveEvent(event("Node", "n1", EvictionThresholdMet, msg, "n1", 10*time.Second, repeatedUntil(3, 70*time.Second)))
	tr.ObserveEvent(event("Node", "n1", EvictionThresholdMet, msg, "n1", 10*time.Second, repeatedUntil(3, 70*time.Second))) // a resync
	// Before the start: not counted.
	tr.ObserveEvent(event("Node", "n2", EvictionThresholdMet, msg, "n2", -5*time.Minute, repeatedUntil(2, -4*time.Minute)))
	// Repeated across the start: only the latest is known to be in.
	other := func(e *corev1.Event) { e.Name = "n3.other" }
	tr.ObserveEvent(event("Node", "n3", EvictionThresholdMet, msg, "n3", -time.Minute, other, repeatedUntil(2, 30*time.Second)))
	tr.ObserveEvent(event("Node", "n1", "NodeHasInsufficientMemory", "", "n1", 5*time.Second)) // another event
	m := tr.Measure(t0.Add(2 * time.Minute))
	if m["thresholdMet"] != int64(4) || m["secondsToThresholdMet"] != 10.0 || m["count"] != int64(0) {
		t.Errorf("measurements %v, want 4 thresholds met, the first at 10 s, and no eviction", m)
	}
	if by := m["thresholdMetByNode"]; !reflect.DeepEqual(by, map[string]any{"n1": int64(3), "n3": int64(1)}) {
		t.Errorf("thresholdMetByNode %v", by)
	}
	th := tr.Thresholds()
	if len(th) != 2 || th[0].Node != "n1" || !th[0].Last.Equal(t0.Add(70*time.Second)) || th[1].Node != "n3" || !th[1].First.Equal(t0.Add(30*time.Second)) {
		t.Errorf("thresholds %+v", th)
	}
}

func TestLostShareIsTheWorkloadsShareEvicted(t *testing.T) {
	tr := New(t0)
	tr.Observe(evicted("a", "p0", "n1", time.Second, corev1.PodQOSBestEffort, 0))
	if _, ok := tr.Measure(t0.Add(time.Minute))["lostShare"]; ok {
		t.Error("lostShare measured with no workload set")
	}
	var pods []string
	for i := range 8 {
		pods = append(pods, fmt.Sprintf("a/p%d", i))
	}
	// Two more pods were there, no longer listed (a restarted controller).
	tr.SetWorkload(pods, 10)
	tr.Observe(evicted("a", "p1", "n1", 2*time.Second, corev1.PodQOSBestEffort, 0))
	tr.Observe(evicted("b", "other", "n1", 3*time.Second, corev1.PodQOSBestEffort, 0))
	m := tr.Measure(t0.Add(time.Minute))
	if m["lostShare"] != 20.0 || m["workloadPods"] != int64(10) || m["workloadEvicted"] != int64(2) || m["count"] != int64(3) {
		t.Errorf("measurements %v, want 2 of 10 workload pods lost (20%%) of 3 evictions", m)
	}
}

func TestAPodRefusedAtAdmissionUnderPressureIsNotAnEviction(t *testing.T) {
	tr := New(t0)
	for _, name := range []string{"batch-1", "batch-2", "batch-1"} {
		tr.ObserveEvent(event("Pod", name, Evicted, "The node had condition: [MemoryPressure]. ", "n1", time.Second))
	}
	tr.ObserveEvent(event("Pod", "cache", Evicted, "The node was low on resource: memory. ", "n1", 2*time.Second))
	m := tr.Measure(t0.Add(time.Minute))
	if m["count"] != int64(1) || m["admissionsRefused"] != int64(2) {
		t.Errorf("count %v, admissionsRefused %v; want 1 eviction and 2 pods refused", m["count"], m["admissionsRefused"])
	}
}

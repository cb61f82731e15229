package nodes

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// node builds a node with options, cert-manager style.
func node(name string, opts ...func(*corev1.Node)) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, o := range opts {
		o(n)
	}
	return n
}

func ready(status corev1.ConditionStatus, at time.Duration) func(*corev1.Node) {
	return func(n *corev1.Node) {
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status, LastTransitionTime: metav1.NewTime(t0.Add(at))}}
	}
}

func tainted(key string, effect corev1.TaintEffect) func(*corev1.Node) {
	return func(n *corev1.Node) { n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: key, Effect: effect}) }
}

func TestTheNodeLossStoryIsMeasured(t *testing.T) {
	tr := New("a")
	tr.Observe(node("a", ready(corev1.ConditionTrue, -time.Hour), tainted("kwok.x-k8s.io/node", corev1.TaintEffectNoSchedule)), t0)
	tr.Observe(node("b", ready(corev1.ConditionFalse, 0)), t0) // not tracked
	// Lease missed: Unknown at +20 s, with both unreachable taints.
	unreach := []func(*corev1.Node){ready(corev1.ConditionUnknown, 20*time.Second), tainted("kwok.x-k8s.io/node", corev1.TaintEffectNoSchedule),
		tainted(corev1.TaintNodeUnreachable, corev1.TaintEffectNoSchedule), tainted(corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute)}
	tr.Observe(node("a", unreach...), t0.Add(21*time.Second))
	tr.Observe(node("a", unreach...), t0.Add(40*time.Second)) // a resync changes nothing
	m := tr.Measure(t0.Add(50 * time.Second))
	if m["notReadyNodes"] != int64(1) || m["maxNotReadySeconds"] != 30.0 {
		t.Errorf("during: %v, want 1 node NotReady for 30 s so far", m)
	}
	// Back at +92 s; the taints go.
	tr.Observe(node("a", ready(corev1.ConditionTrue, 92*time.Second), tainted("kwok.x-k8s.io/node", corev1.TaintEffectNoSchedule)), t0.Add(93*time.Second))
	m = tr.Measure(t0.Add(100 * time.Second))
	want := map[string]any{"notReadyNodes": int64(0), "maxNotReadySeconds": 72.0, "notReadySpans": int64(1), "nodesAffected": int64(1), "taintsAdded": int64(2), "unreachableTainted": true}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if got := tr.ReadyAgain("a"); !got.Equal(t0.Add(92 * time.Second)) {
		t.Errorf("ReadyAgain = %v, want t0+92s", got)
	}
	changes := tr.TaintChanges()
	if len(changes) != 4 || changes[2].Added || changes[3].Added {
		t.Errorf("taint changes %+v, want two added then two removed", changes)
	}
}

func pressure(c corev1.NodeConditionType, status corev1.ConditionStatus, at time.Duration) func(*corev1.Node) {
	return func(n *corev1.Node) {
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: c, Status: status, LastTransitionTime: metav1.NewTime(t0.Add(at))})
	}
}

func TestPressureSpans(t *testing.T) {
	mem, disk := corev1.NodeMemoryPressure, corev1.NodeDiskPressure
	type seen struct {
		at   time.Duration
		node *corev1.Node
	}
	for name, tc := range map[string]struct {
		timeline []seen
		now      time.Duration
		want     map[string]any // of memoryPressure
		spans    []Span
	}{
		"a span still open is counted up to now": {
			timeline: []seen{
				{0, node("a", ready(corev1.ConditionTrue, -time.Hour), pressure(mem, corev1.ConditionFalse, -time.Hour))},
				{31 * time.Second, node("a", ready(corev1.ConditionTrue, -time.Hour), pressure(mem, corev1.ConditionTrue, 30*time.Second))},
			},
			now:   90 * time.Second,
			want:  map[string]any{"count": int64(1), "open": int64(1), "nodes": int64(1), "totalSeconds": 60.0, "longestSeconds": 60.0},
			spans: []Span{{Node: "a", From: t0.Add(30 * time.Second)}},
		},
		"a closed span keeps its start and end; a second one on another node adds up": {
			timeline: []seen{
				{31 * time.Second, node("a", pressure(mem, corev1.ConditionTrue, 30*time.Second))},
				{41 * time.Second, node("b", pressure(mem, corev1.ConditionTrue, 40*time.Second))},
				{61 * time.Second, node("b", pressure(mem, corev1.ConditionTrue, 40*time.Second))}, // a resync
				{5 * time.Minute, node("a", pressure(mem, corev1.ConditionFalse, 4*time.Minute+30*time.Second))},
				{6 * time.Minute, node("b", pressure(mem, corev1.ConditionFalse, 5*time.Minute+40*time.Second))},
			},
			now:  10 * time.Minute,
			want: map[string]any{"count": int64(2), "open": int64(0), "nodes": int64(2), "totalSeconds": 540.0, "longestSeconds": 300.0},
			spans: []Span{{Node: "a", From: t0.Add(30 * time.Second), To: t0.Add(4*time.Minute + 30*time.Second)},
				{Node: "b", From: t0.Add(40 * time.Second), To: t0.Add(5*time.Minute + 40*time.Second)}},
		},
		"a node under pressure twice has two spans": {
			timeline: []seen{
				{10 * time.Second, node("a", pressure(mem, corev1.ConditionTrue, 10*time.Second))},
				{20 * time.Second, node("a", pressure(mem, corev1.ConditionFalse, 20*time.Second))},
				{40 * time.Second, node("a", pressure(mem, corev1.ConditionTrue, 40*time.Second))},
			},
			now:  time.Minute,
			want: map[string]any{"count": int64(2), "open": int64(1), "nodes": int64(1), "totalSeconds": 30.0, "longestSeconds": 20.0, "byNode": map[string]any{"a": 30.0}},
		},
		"DiskPressure is measured apart, and nodes not followed not at all": {
			timeline: []seen{
				{10 * time.Second, node("a", pressure(disk, corev1.ConditionTrue, 10*time.Second))},
				{10 * time.Second, node("z", pressure(mem, corev1.ConditionTrue, 10*time.Second))},
			},
			now:  time.Minute,
			want: map[string]any{"count": int64(0), "open": int64(0), "totalSeconds": 0.0},
		},
	} {
		t.Run(name, func(t *testing.T) {
			tr := New("a", "b")
			for _, s := range tc.timeline {
				tr.Observe(s.node, t0.Add(s.at))
			}
			m := tr.Measure(t0.Add(tc.now))["memoryPressure"].(map[string]any)
			for k, v := range tc.want {
				if !reflect.DeepEqual(m[k], v) {
					t.Errorf("memoryPressure.%s = %v, want %v", k, m[k], v)
				}
			}
			if tc.spans != nil && !reflect.DeepEqual(tr.ConditionSpans(mem), tc.spans) {
				t.Errorf("spans %+v, want %+v", tr.ConditionSpans(mem), tc.spans)
			}
		})
	}
}

func TestAPressureSpanIsRebuiltFromTheKubeletsEvents(t *testing.T) {
	tr := New("a")
	// A restarted controller replays the events, then sees the node.
	for _, e := range []struct {
		reason string
		at     time.Duration
	}{{"NodeHasSufficientMemory", -time.Hour}, {"NodeHasInsufficientMemory", 30 * time.Second}, {"NodeHasSufficientMemory", 5 * time.Minute}} {
		c := PressureEvents[e.reason]
		c.LastTransitionTime = metav1.NewTime(t0.Add(e.at))
		tr.ObserveCondition("a", c, t0.Add(e.at))
	}
	tr.Observe(node("a", ready(corev1.ConditionTrue, -time.Hour), tainted("kwok.x-k8s.io/node", corev1.TaintEffectNoSchedule),
		pressure(corev1.NodeMemoryPressure, corev1.ConditionFalse, 5*time.Minute)), t0.Add(10*time.Minute))
	m := tr.Measure(t0.Add(10 * time.Minute))
	if p := m["memoryPressure"].(map[string]any); p["count"] != int64(1) || p["totalSeconds"] != 270.0 {
		t.Errorf("memoryPressure %v, want one span of 270 s", p)
	}
	if m["taintsAdded"] != int64(0) || m["notReadySpans"] != int64(0) {
		t.Errorf("replayed events changed taints or readiness: %v", m)
	}
}

func TestARestartedTrackerKeepsTheTaintsItWasToldOf(t *testing.T) {
	tr := New("a")
	// The status held one change: the unreachable taint, added at +20 s.
	tr.Seed(TaintChange{Node: "a", Taint: corev1.TaintNodeUnreachable + ":" + string(corev1.TaintEffectNoExecute), Added: true, At: t0.Add(20 * time.Second)})
	tr.ObserveCondition("a", corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionUnknown, LastTransitionTime: metav1.NewTime(t0.Add(20 * time.Second))}, t0)
	// The node as it is: its standing taint, and the unreachable one gone.
	tr.Observe(node("a", ready(corev1.ConditionTrue, 90*time.Second), tainted("kwok.x-k8s.io/node", corev1.TaintEffectNoSchedule)), t0.Add(100*time.Second))
	changes := tr.TaintChanges()
	if len(changes) != 2 || !changes[0].Added || changes[1].Added || changes[1].Taint != corev1.TaintNodeUnreachable+":"+string(corev1.TaintEffectNoExecute) {
		t.Errorf("taint changes %+v, want the seeded one and its removal, not the standing taint", changes)
	}
	if m := tr.Measure(t0.Add(100 * time.Second)); m["maxNotReadySeconds"] != 70.0 {
		t.Errorf("maxNotReadySeconds %v, want 70", m["maxNotReadySeconds"])
	}
}

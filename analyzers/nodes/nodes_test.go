package nodes

import (
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

// Package nodes measures what nodes went through: NotReady spans, pressure
// spans (MemoryPressure, DiskPressure, PIDPressure) and the taints added
// and removed, with their times. Times come from the API objects
// (condition transitions, taints' timeAdded) rather than from when the
// analyzer saw them, so a late or restarted analyzer measures the same.
package nodes

import (
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Span is a NotReady (or pressure) period of a node; To is zero while it
// lasts.
type Span struct {
	Node     string
	From, To time.Time
}

// TaintChange is a taint added to or removed from a node.
type TaintChange struct {
	Node, Taint string
	Added       bool
	At          time.Time
}

// Tracker follows a set of nodes (all when Only is empty).
type Tracker struct {
	// Only restricts the tracker to these nodes.
	Only map[string]bool

	mu sync.Mutex
	// spans by condition (NodeReady for NotReady), then by node.
	spans  map[corev1.NodeConditionType]map[string][]Span
	taints map[string]map[string]bool
	// baselined: nodes seen whole once, whose standing taints are known.
	baselined map[string]bool
	change    []TaintChange
}

// Pressures are the pressure conditions measured, with their names in the
// measurements. The kubelet keeps a condition True for its
// eviction-pressure-transition-period (5 minutes by default) after the
// pressure ends, so a span outlasts the pressure by that much.
var Pressures = map[corev1.NodeConditionType]string{
	corev1.NodeMemoryPressure: "memoryPressure", corev1.NodeDiskPressure: "diskPressure", corev1.NodePIDPressure: "pidPressure"}

// PressureEvents are the kubelet's Node events for pressure conditions'
// transitions, as the condition they report: a restarted controller
// rebuilds spans that ended while it was down from them.
var PressureEvents = map[string]corev1.NodeCondition{
	"NodeHasInsufficientMemory": {Type: corev1.NodeMemoryPressure, Status: corev1.ConditionTrue},
	"NodeHasSufficientMemory":   {Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse},
	"NodeHasDiskPressure":       {Type: corev1.NodeDiskPressure, Status: corev1.ConditionTrue},
	"NodeHasNoDiskPressure":     {Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse},
	"NodeHasInsufficientPID":    {Type: corev1.NodePIDPressure, Status: corev1.ConditionTrue},
	"NodeHasSufficientPID":      {Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse},
}

func New(only ...string) *Tracker {
	t := &Tracker{spans: map[corev1.NodeConditionType]map[string][]Span{}, taints: map[string]map[string]bool{}, baselined: map[string]bool{}}
	if len(only) > 0 {
		t.Only = map[string]bool{}
		for _, n := range only {
			t.Only[n] = true
		}
	}
	return t
}

func (t *Tracker) Name() string { return "nodes" }

// Observe records a node's state as seen at now.
func (t *Tracker) Observe(n *corev1.Node, now time.Time) {
	if t.Only != nil && !t.Only[n.Name] {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range n.Status.Conditions {
		t.observeCondition(n.Name, c, now)
	}
	if !t.baselined[n.Name] {
		// The first sight is the baseline: taints the node already had are
		// not changes (nor, after a restart, those Seed did not restore).
		t.baselined[n.Name] = true
		if t.taints[n.Name] == nil {
			t.taints[n.Name] = map[string]bool{}
		}
		for _, taint := range n.Spec.Taints {
			t.taints[n.Name][taint.Key+":"+string(taint.Effect)] = true
		}
	}
	seen := map[string]bool{}
	for _, taint := range n.Spec.Taints {
		key := taint.Key + ":" + string(taint.Effect)
		seen[key] = true
		if !t.taints[n.Name][key] {
			t.taints[n.Name][key] = true
			at := now
			if taint.TimeAdded != nil {
				at = taint.TimeAdded.Time
			}
			t.change = append(t.change, TaintChange{Node: n.Name, Taint: key, Added: true, At: at})
		}
	}
	for key := range t.taints[n.Name] {
		if !seen[key] {
			delete(t.taints[n.Name], key)
			t.change = append(t.change, TaintChange{Node: n.Name, Taint: key, Added: false, At: now})
		}
	}
}

// ObserveCondition records one condition of a node as seen at now, as a
// node's Event reports it, leaving the node's taints alone.
func (t *Tracker) ObserveCondition(node string, c corev1.NodeCondition, now time.Time) {
	if t.Only != nil && !t.Only[node] {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.observeCondition(node, c, now)
}

// observeCondition opens a span when the condition turns bad (Ready not
// True, a pressure True) and closes it when it turns good again.
func (t *Tracker) observeCondition(node string, c corev1.NodeCondition, now time.Time) {
	bad := c.Status == corev1.ConditionTrue
	switch {
	case c.Type == corev1.NodeReady:
		bad = !bad
	case Pressures[c.Type] == "":
		return
	}
	at := c.LastTransitionTime.Time
	if at.IsZero() {
		at = now
	}
	if t.spans[c.Type] == nil {
		t.spans[c.Type] = map[string][]Span{}
	}
	spans := t.spans[c.Type][node]
	open := len(spans) > 0 && spans[len(spans)-1].To.IsZero()
	switch {
	case bad && !open:
		t.spans[c.Type][node] = append(spans, Span{Node: node, From: at})
	case !bad && open:
		if at.Before(spans[len(spans)-1].From) {
			at = now
		}
		spans[len(spans)-1].To = at
	}
}

// Spans returns every NotReady span, oldest first.
func (t *Tracker) Spans() []Span { return t.ConditionSpans(corev1.NodeReady) }

// ConditionSpans returns the spans of a condition (NotReady for NodeReady,
// True for a pressure), oldest first.
func (t *Tracker) ConditionSpans(c corev1.NodeConditionType) []Span {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Span
	for _, s := range t.spans[c] {
		out = append(out, s...)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].From.Equal(out[j].From) {
			return out[i].From.Before(out[j].From)
		}
		return out[i].Node < out[j].Node
	})
	return out
}

// TaintChanges returns the taints added and removed, oldest first.
func (t *Tracker) TaintChanges() []TaintChange {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := append([]TaintChange(nil), t.change...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// ReadyAgain returns when the node last became Ready after NotReady, or
// zero if it has not (or never was NotReady).
func (t *Tracker) ReadyAgain(node string) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	spans := t.spans[corev1.NodeReady][node]
	if len(spans) == 0 {
		return time.Time{}
	}
	return spans[len(spans)-1].To
}

// Measure: maxNotReadySeconds, totalNotReadySeconds, notReadySpans,
// notReadyNodes (now), nodesAffected, taintsAdded and unreachableTainted;
// and for each pressure (memoryPressure, diskPressure, pidPressure) its
// spans: count, nodes, open (now), totalSeconds, longestSeconds (an open
// span counted up to now) and byNode (seconds).
func (t *Tracker) Measure(now time.Time) map[string]any {
	spans := t.Spans()
	var maxS, total float64
	affected, notReady := map[string]bool{}, 0
	for _, s := range spans {
		to := s.To
		if to.IsZero() {
			to = now
			notReady++
		}
		d := to.Sub(s.From).Seconds()
		total += d
		if d > maxS {
			maxS = d
		}
		affected[s.Node] = true
	}
	added, unreachable := 0, false
	for _, c := range t.TaintChanges() {
		if c.Added {
			added++
			if c.Taint == corev1.TaintNodeUnreachable+":"+string(corev1.TaintEffectNoExecute) {
				unreachable = true
			}
		}
	}
	m := map[string]any{
		"maxNotReadySeconds":   maxS,
		"totalNotReadySeconds": total,
		"notReadySpans":        int64(len(spans)),
		"notReadyNodes":        int64(notReady),
		"nodesAffected":        int64(len(affected)),
		"taintsAdded":          int64(added),
		"unreachableTainted":   unreachable,
	}
	for c, name := range Pressures {
		m[name] = measureSpans(t.ConditionSpans(c), now)
	}
	return m
}

func measureSpans(spans []Span, now time.Time) map[string]any {
	var total, longest float64
	open := 0
	byNode := map[string]any{}
	for _, s := range spans {
		to := s.To
		if to.IsZero() {
			to = now
			open++
		}
		d := to.Sub(s.From).Seconds()
		total += d
		longest = max(longest, d)
		n, _ := byNode[s.Node].(float64)
		byNode[s.Node] = n + d
	}
	return map[string]any{"count": int64(len(spans)), "nodes": int64(len(byNode)), "open": int64(open),
		"totalSeconds": total, "longestSeconds": longest, "byNode": byNode}
}

// Seed restores a taint change recorded earlier (by a controller that has
// since restarted), so the change is kept and not seen as new again.
func (t *Tracker) Seed(c TaintChange) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.taints[c.Node] == nil {
		t.taints[c.Node] = map[string]bool{}
	}
	if c.Added {
		t.taints[c.Node][c.Taint] = true
	} else {
		delete(t.taints[c.Node], c.Taint)
	}
	t.change = append(t.change, c)
}

// Covers reports whether a known NotReady span of the node holds the time
// (give or take the few seconds between an Event and a condition).
func (t *Tracker) Covers(node string, at time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.spans[corev1.NodeReady][node] {
		if !at.Before(s.From.Add(-5*time.Second)) && (s.To.IsZero() || !at.After(s.To.Add(5*time.Second))) {
			return true
		}
	}
	return false
}

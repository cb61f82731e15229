// Package nodes measures what nodes went through: NotReady spans and the
// taints added and removed, with their times. Times come from the API
// objects (condition transitions, taints' timeAdded) rather than from when
// the analyzer saw them, so a late or restarted analyzer measures the same.
package nodes

import (
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Span is a NotReady period of a node; To is zero while it lasts.
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

	mu     sync.Mutex
	spans  map[string][]Span
	taints map[string]map[string]bool
	change []TaintChange
}

func New(only ...string) *Tracker {
	t := &Tracker{spans: map[string][]Span{}, taints: map[string]map[string]bool{}}
	if len(only) > 0 {
		t.Only = map[string]bool{}
		for _, n := range only {
			t.Only[n] = true
		}
	}
	return t
}

func (t *Tracker) Name() string { return "nodes" }

func readyCondition(n *corev1.Node) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

// Observe records a node's state as seen at now.
func (t *Tracker) Observe(n *corev1.Node, now time.Time) {
	if t.Only != nil && !t.Only[n.Name] {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := readyCondition(n); c != nil {
		at := c.LastTransitionTime.Time
		if at.IsZero() {
			at = now
		}
		spans := t.spans[n.Name]
		open := len(spans) > 0 && spans[len(spans)-1].To.IsZero()
		switch {
		case c.Status != corev1.ConditionTrue && !open:
			t.spans[n.Name] = append(spans, Span{Node: n.Name, From: at})
		case c.Status == corev1.ConditionTrue && open:
			if at.Before(spans[len(spans)-1].From) {
				at = now
			}
			spans[len(spans)-1].To = at
		}
	}
	_, known := t.taints[n.Name]
	if !known {
		// The first sight is the baseline: taints the node already had are
		// not changes.
		t.taints[n.Name] = map[string]bool{}
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

// Spans returns every NotReady span, oldest first.
func (t *Tracker) Spans() []Span {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Span
	for _, s := range t.spans {
		out = append(out, s...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].From.Before(out[j].From) })
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
	spans := t.spans[node]
	if len(spans) == 0 {
		return time.Time{}
	}
	return spans[len(spans)-1].To
}

// Measure: maxNotReadySeconds, totalNotReadySeconds, notReadySpans,
// notReadyNodes (now), nodesAffected, taintsAdded and unreachableTainted.
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
	return map[string]any{
		"maxNotReadySeconds":   maxS,
		"totalNotReadySeconds": total,
		"notReadySpans":        int64(len(spans)),
		"notReadyNodes":        int64(notReady),
		"nodesAffected":        int64(len(affected)),
		"taintsAdded":          int64(added),
		"unreachableTainted":   unreachable,
	}
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
	for _, s := range t.spans[node] {
		if !at.Before(s.From.Add(-5*time.Second)) && (s.To.IsZero() || !at.After(s.To.Add(5*time.Second))) {
			return true
		}
	}
	return false
}

// Package workloads measures what the workloads under an experiment kept
// serving while it ran: for each Deployment, how long none of its replicas
// was available (down) and how long fewer than it wants were (degraded).
// Recovery times say when a workload came back; these say what users lost
// meanwhile, which is what tells a single replica from a spread one.
package workloads

import (
	"sort"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
)

// Tracker follows a set of Deployments from a start.
type Tracker struct {
	since time.Time

	mu sync.Mutex
	w  map[string]*state
}

type state struct {
	seen                     bool
	available, desired       int32
	minAvailable             int32
	downFrom, degradedFrom   time.Time // open spans; zero when closed
	downTotal, degradedTotal time.Duration
}

// New tracks the Deployments named NAMESPACE/NAME from since on.
func New(since time.Time, names ...string) *Tracker {
	t := &Tracker{since: since, w: map[string]*state{}}
	for _, n := range names {
		t.w[n] = &state{}
	}
	return t
}

func (t *Tracker) Name() string { return "workloads" }

// Observe records a Deployment's availability at now; Deployments not
// tracked are ignored.
func (t *Tracker) Observe(d *appsv1.Deployment, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.w[d.Namespace+"/"+d.Name]
	if !ok {
		return
	}
	if now.Before(t.since) {
		now = t.since
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	avail := d.Status.AvailableReplicas
	if !s.seen || avail < s.minAvailable {
		s.minAvailable = avail
	}
	s.seen, s.available, s.desired = true, avail, want
	down, degraded := want > 0 && avail == 0, avail < want
	s.downFrom, s.downTotal = span(down, s.downFrom, s.downTotal, now)
	s.degradedFrom, s.degradedTotal = span(degraded, s.degradedFrom, s.degradedTotal, now)
}

// span opens a span when on starts, and closes it into total when on ends.
func span(on bool, from time.Time, total time.Duration, now time.Time) (time.Time, time.Duration) {
	switch {
	case on && from.IsZero():
		return now, total
	case !on && !from.IsZero():
		return time.Time{}, total + now.Sub(from)
	}
	return from, total
}

// Measure: unavailableSeconds and degradedSeconds (the worst workload's,
// open spans counted up to now), minAvailable (the fewest replicas any
// workload had available), workloads (how many were seen), and per
// workload byWorkload.NAMESPACE/NAME.unavailableSeconds.
func (t *Tracker) Measure(now time.Time) map[string]any {
	t.mu.Lock()
	defer t.mu.Unlock()
	names := make([]string, 0, len(t.w))
	for n := range t.w {
		names = append(names, n)
	}
	sort.Strings(names)
	worstDown, worstDegraded, seen := 0.0, 0.0, int64(0)
	minAvail := int64(-1)
	by := map[string]any{}
	for _, n := range names {
		s := t.w[n]
		if !s.seen {
			continue
		}
		seen++
		down, degraded := s.downTotal, s.degradedTotal
		if !s.downFrom.IsZero() {
			down += now.Sub(s.downFrom)
		}
		if !s.degradedFrom.IsZero() {
			degraded += now.Sub(s.degradedFrom)
		}
		worstDown, worstDegraded = max(worstDown, down.Seconds()), max(worstDegraded, degraded.Seconds())
		if minAvail < 0 || int64(s.minAvailable) < minAvail {
			minAvail = int64(s.minAvailable)
		}
		by[n] = map[string]any{"unavailableSeconds": down.Seconds(), "degradedSeconds": degraded.Seconds(), "minAvailable": int64(s.minAvailable)}
	}
	m := map[string]any{"workloads": seen, "unavailableSeconds": worstDown, "degradedSeconds": worstDegraded, "byWorkload": by}
	if minAvail >= 0 {
		m["minAvailable"] = minAvail
	}
	return m
}

// Package oomkills measures containers the kernel OOM-killed: which, where,
// when, and whether the kubelet restarted them. It reads the terminated
// state the kubelet reports for each container (reason OOMKilled), with
// its time, so a late or restarted analyzer measures the same kills.
package oomkills

import (
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// OOMKilled is the reason the kubelet gives a container the kernel killed
// for memory.
const OOMKilled = "OOMKilled"

// Kill is one container OOM-killed.
type Kill struct {
	Namespace, Pod, Container, Node string
	// At is when the container terminated.
	At time.Time
	// RestartCount is the container's restart count when last seen.
	RestartCount int32
	// Restarted: the kill has moved to the container's last state, so the
	// kubelet has restarted the container (or waits to, in back-off).
	Restarted bool
}

// Tracker records OOM kills from a time on.
type Tracker struct {
	// Since ignores kills before it.
	Since time.Time

	mu   sync.Mutex
	seen map[string]*Kill
	// Carried over by Resume.
	resumed                   int64
	resumedFirst, resumedLast time.Time
}

func New(since time.Time) *Tracker { return &Tracker{Since: since, seen: map[string]*Kill{}} }

func (t *Tracker) Name() string { return "oom" }

// Observe records the OOM kills a pod shows. A kill shows in the
// container's state, then in its last state once restarted, with a restart
// count that changes in between: it is keyed by its container and its time,
// so that it is counted once.
func (t *Tracker) Observe(p *corev1.Pod) {
	for _, statuses := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for i := range statuses {
			s := &statuses[i]
			if k := s.LastTerminationState.Terminated; k != nil && k.Reason == OOMKilled {
				t.record(p, s, k.FinishedAt, true)
			}
			if k := s.State.Terminated; k != nil && k.Reason == OOMKilled {
				t.record(p, s, k.FinishedAt, false)
			}
		}
	}
}

func (t *Tracker) record(p *corev1.Pod, s *corev1.ContainerStatus, at metav1.Time, restarted bool) {
	if at.IsZero() || at.Time.Before(t.Since) {
		return
	}
	key := p.Namespace + "/" + p.Name + "/" + s.Name + "@" + strconv.FormatInt(at.Unix(), 10)
	t.mu.Lock()
	defer t.mu.Unlock()
	k := t.seen[key]
	if k == nil {
		k = &Kill{Namespace: p.Namespace, Pod: p.Name, Container: s.Name, At: at.Time}
		t.seen[key] = k
	}
	if p.Spec.NodeName != "" {
		k.Node = p.Spec.NodeName
	}
	k.RestartCount = max(k.RestartCount, s.RestartCount)
	k.Restarted = k.Restarted || restarted
}

// Resume carries on from a count recorded earlier (by a controller that
// has since restarted), with its first and last kill: kills at or before
// last are taken as counted in kills, later ones add to it. Pods keep only
// each container's latest kill, and deleted pods none, so the kills
// themselves cannot all be seen again; the other figures count only the
// kills seen since.
func (t *Tracker) Resume(kills int64, first, last time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.resumed, t.resumedFirst, t.resumedLast = kills, first, last
}

// List returns the kills, oldest first.
func (t *Tracker) List() []Kill {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Kill, 0, len(t.seen))
	for _, k := range t.seen {
		out = append(out, *k)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.Before(out[j].At)
		}
		return out[i].Namespace+"/"+out[i].Pod+"/"+out[i].Container < out[j].Namespace+"/"+out[j].Pod+"/"+out[j].Container
	})
	return out
}

// Measure: kills, pods and containers killed, restarts (kills after which
// the kubelet restarted the container: kills − restarts are containers
// left down, such as with restartPolicy Never), byNamespace, byNode, and
// secondsToFirst and secondsToLast after Since when there was a kill.
func (t *Tracker) Measure(time.Time) map[string]any {
	list := t.List()
	t.mu.Lock()
	resumed, first, last := t.resumed, t.resumedFirst, t.resumedLast
	t.mu.Unlock()
	pods, containers := map[string]bool{}, map[string]bool{}
	byNS, byNode := map[string]any{}, map[string]any{}
	inc := func(m map[string]any, k string) { n, _ := m[k].(int64); m[k] = n + 1 }
	kills, restarts := resumed, int64(0)
	for _, k := range list {
		if resumed == 0 || k.At.After(last) {
			kills++
		}
		if k.Restarted {
			restarts++
		}
		pods[k.Namespace+"/"+k.Pod] = true
		containers[k.Namespace+"/"+k.Pod+"/"+k.Container] = true
		inc(byNS, k.Namespace)
		inc(byNode, k.Node)
	}
	m := map[string]any{
		"kills":       kills,
		"pods":        int64(len(pods)),
		"containers":  int64(len(containers)),
		"restarts":    restarts,
		"byNamespace": byNS,
		"byNode":      byNode,
	}
	if len(list) > 0 {
		if first.IsZero() || list[0].At.Before(first) {
			first = list[0].At
		}
		if list[len(list)-1].At.After(last) {
			last = list[len(list)-1].At
		}
	}
	if kills > 0 && !first.IsZero() {
		m["secondsToFirst"] = first.Sub(t.Since).Seconds()
		m["secondsToLast"] = last.Sub(t.Since).Seconds()
	}
	return m
}

// KeepKills cuts container statuses to the OOM kills they show: the
// container's name and restart count, and its terminated states. Other
// containers are dropped, so a cache of stripped pods pays nothing for
// the (many) containers never OOM-killed.
func KeepKills(statuses []corev1.ContainerStatus) []corev1.ContainerStatus {
	var out []corev1.ContainerStatus
	for _, s := range statuses {
		state, last := s.State.Terminated, s.LastTerminationState.Terminated
		if (state == nil || state.Reason != OOMKilled) && (last == nil || last.Reason != OOMKilled) {
			continue
		}
		k := corev1.ContainerStatus{Name: s.Name, RestartCount: s.RestartCount}
		if state != nil {
			k.State.Terminated = &corev1.ContainerStateTerminated{Reason: state.Reason, ExitCode: state.ExitCode, FinishedAt: state.FinishedAt}
		}
		if last != nil {
			k.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{Reason: last.Reason, ExitCode: last.ExitCode, FinishedAt: last.FinishedAt}
		}
		out = append(out, k)
	}
	return out
}

// Strip keeps what the tracker reads of a pod: an informer transform for
// a cache that feeds this tracker alone (evictions.Strip keeps this and
// what the evictions tracker reads).
func Strip(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion},
		Spec:       corev1.PodSpec{NodeName: p.Spec.NodeName},
		Status:     corev1.PodStatus{InitContainerStatuses: KeepKills(p.Status.InitContainerStatuses), ContainerStatuses: KeepKills(p.Status.ContainerStatuses)},
	}, nil
}

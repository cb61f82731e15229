// Package evictions measures pods evicted: by whom and why, how fast, and
// where. It reads the DisruptionTarget condition that Kubernetes puts on a
// pod before it deletes it for a disruption (taint manager, kubelet
// pressure, preemption, eviction API), with its time, and the Events that
// announce evictions; it keeps only a few fields of each pod so that it
// stays cheap on big clusters. Under node pressure it also judges the
// order in which the kubelet evicted (see ranksBefore), and counts the
// kubelet's EvictionThresholdMet events.
package evictions

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"faultline.dev/faultline/analyzers/oomkills"
)

// Reasons, named as the events that announce them.
const (
	TaintManagerEviction = "TaintManagerEviction"
	Evicted              = "Evicted" // by the kubelet under node pressure
	Preempted            = "Preempted"
	EvictionAPI          = "EvictionAPI"
	// NodeShutdown: the kubelet's graceful node shutdown, which sets the
	// same DisruptionTarget reason as its pressure evictions.
	NodeShutdown = "NodeShutdown"
	// ThresholdMet is the Node event of a kubelet that starts evicting.
	EvictionThresholdMet = "EvictionThresholdMet"
)

var reasonOf = map[string]string{
	"DeletionByTaintManager": TaintManagerEviction,
	"TerminationByKubelet":   Evicted,
	"PreemptionByScheduler":  Preempted,
	"EvictionByEvictionAPI":  EvictionAPI,
}

// Eviction is one pod disrupted.
type Eviction struct {
	Namespace, Pod, Node, Reason string
	At                           time.Time
	// ViolatedPDB names a PodDisruptionBudget that allowed no disruption
	// of this pod when it was evicted.
	ViolatedPDB string
	// QOSClass and Priority of the pod; QOSClass is empty when only an
	// Event announced the eviction.
	QOSClass corev1.PodQOSClass
	Priority int32
	// Created is when the pod was created, if known.
	Created time.Time
	// Resource the kubelet reclaimed by the eviction (memory,
	// ephemeral-storage, pids), as its message names it.
	Resource string
}

// Tracker records evictions in a window of time.
type Tracker struct {
	// Since ignores disruptions that happened before it.
	Since time.Time
	// ViolatedPDB, when set, names a PodDisruptionBudget covering the pod
	// that allows no disruption now, or returns "".
	ViolatedPDB func(*corev1.Pod) string

	mu        sync.Mutex
	seen      map[string]Eviction
	threshold map[string]*repeated
	// rejected are pods the kubelet refused at admission under pressure.
	rejected map[string]bool
	// The workload, for lostShare: its pods at the start (NAMESPACE/NAME)
	// and its size.
	workload     map[string]bool
	workloadSize int
}

func New(since time.Time) *Tracker {
	return &Tracker{Since: since, seen: map[string]Eviction{}, threshold: map[string]*repeated{}, rejected: map[string]bool{}}
}

// SetWorkload sets the pods in scope when the fault began (as
// NAMESPACE/NAME) and their number, for lostShare: the share of them
// evicted. size counts pods no longer listed (a restarted controller knows
// the size but not every pod); 0 means len(pods).
func (t *Tracker) SetWorkload(pods []string, size int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.workload = map[string]bool{}
	for _, p := range pods {
		t.workload[p] = true
	}
	t.workloadSize = max(size, len(pods))
}

func (t *Tracker) Name() string { return "evictions" }

// Observe records a pod if it carries a DisruptionTarget condition.
func (t *Tracker) Observe(p *corev1.Pod) {
	for _, c := range p.Status.Conditions {
		if c.Type != corev1.DisruptionTarget || c.Status != corev1.ConditionTrue {
			continue
		}
		at := c.LastTransitionTime.Time
		if at.Before(t.Since) {
			return
		}
		reason := reasonOf[c.Reason]
		switch {
		case reason == "":
			reason = c.Reason
		case reason == Evicted && p.Status.Reason == "Terminated":
			reason = NodeShutdown
		}
		e := Eviction{Namespace: p.Namespace, Pod: p.Name, Node: p.Spec.NodeName, Reason: reason, At: at,
			QOSClass: p.Status.QOSClass, Created: p.CreationTimestamp.Time}
		if p.Spec.Priority != nil {
			e.Priority = *p.Spec.Priority
		}
		if reason == Evicted {
			e.Resource = resourceOf(p.Status.Message)
		}
		t.mu.Lock()
		// Keyed by namespace/name: a controller that restarts seeds its
		// tracker from the status, then sees the same pods again.
		key := p.Namespace + "/" + p.Name
		prev, known := t.seen[key]
		if known {
			// Announced by an Event first, or seeded: the pod tells where
			// it ran, its class and priority.
			t.seen[key] = fill(prev, e)
		}
		t.mu.Unlock()
		if known {
			return
		}
		if t.ViolatedPDB != nil {
			e.ViolatedPDB = t.ViolatedPDB(p)
		}
		t.Seed(e)
		return
	}
}

// fill completes what a known eviction misses with what the pod says.
func fill(prev, e Eviction) Eviction {
	if prev.Node == "" {
		prev.Node = e.Node
	}
	if prev.QOSClass == "" {
		prev.QOSClass, prev.Priority = e.QOSClass, e.Priority
	}
	if prev.Created.IsZero() {
		prev.Created = e.Created
	}
	if prev.Resource == "" {
		prev.Resource = e.Resource
	}
	return prev
}

// resourceOf reads the resource a kubelet eviction reclaimed from its
// message: "The node was low on resource: memory. Threshold quantity: ...".
func resourceOf(msg string) string {
	const prefix = "low on resource: "
	i := strings.Index(msg, prefix)
	if i < 0 {
		return ""
	}
	msg = msg[i+len(prefix):]
	if j := strings.IndexAny(msg, ". "); j >= 0 {
		msg = msg[:j]
	}
	return msg
}

// ObserveEvent records the eviction an Event announces: the taint
// manager's "Marking for deletion", the kubelet's Evicted, the scheduler's
// Preempted. Pods seen with their DisruptionTarget condition are counted
// once; an Event also covers a pod deleted before it was seen. It also
// counts a node's EvictionThresholdMet events.
func (t *Tracker) ObserveEvent(e *corev1.Event) {
	if e.InvolvedObject.Kind == "Node" && e.Reason == EvictionThresholdMet {
		t.observeThreshold(e)
		return
	}
	if e.InvolvedObject.Kind != "Pod" {
		return
	}
	reason := ""
	switch {
	case e.Reason == TaintManagerEviction && strings.HasPrefix(e.Message, "Marking for deletion"):
		reason = TaintManagerEviction
	case e.Reason == Evicted || e.Reason == Preempted:
		reason = e.Reason
	default:
		return
	}
	at := e.EventTime.Time
	if at.IsZero() {
		at = e.FirstTimestamp.Time
	}
	if at.Before(t.Since) {
		return
	}
	// The kubelet also says Evicted of a pod it refuses to admit under
	// pressure ("The node had condition: [MemoryPressure]"): that pod never
	// ran there, and counting it would make every replacement of an
	// evicted pod, refused in a loop, look like a storm of evictions.
	if e.Reason == Evicted && strings.HasPrefix(e.Message, admissionRefusal) {
		t.mu.Lock()
		t.rejected[e.InvolvedObject.Namespace+"/"+e.InvolvedObject.Name] = true
		t.mu.Unlock()
		return
	}
	// The kubelet reports from its node; the taint manager and the
	// scheduler from no host.
	ev := Eviction{Namespace: e.InvolvedObject.Namespace, Pod: e.InvolvedObject.Name, Node: e.Source.Host, Reason: reason, At: at}
	if reason == Evicted {
		ev.Resource = resourceOf(e.Message)
	}
	if reason == Preempted && ev.Node == "" {
		// "Preempted by pod UID on node NAME": the scheduler names it.
		if _, node, ok := strings.Cut(e.Message, " on node "); ok {
			ev.Node = strings.TrimSpace(node)
		}
	}
	t.Seed(ev)
}

// admissionRefusal starts the kubelet's message for a pod it refuses to
// admit under node pressure.
const admissionRefusal = "The node had condition:"

// repeated is one Event object, which the recorder reuses for repeats:
// its count grows and its last time moves.
type repeated struct {
	node string
	// base is the count that happened before Since; first is the first
	// occurrence from Since on, last the latest.
	count, base int32
	first, last time.Time
}

func (t *Tracker) observeThreshold(e *corev1.Event) {
	count, first, last := e.Count, eventTime(e), e.LastTimestamp.Time
	if e.Series != nil {
		count, last = max(count, e.Series.Count), e.Series.LastObservedTime.Time
	}
	count = max(count, 1)
	if last.IsZero() || last.Before(first) {
		last = first
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	key := e.Namespace + "/" + e.Name
	r := t.threshold[key]
	if r == nil {
		r = &repeated{node: e.InvolvedObject.Name}
		switch {
		case !first.Before(t.Since):
			r.first = first
		case last.Before(t.Since):
			r.base = count
		default:
			// Repeated across Since: only the latest is known to be in.
			r.base = count - 1
		}
		t.threshold[key] = r
	}
	if count > r.count {
		r.count, r.last = count, last
		if r.first.IsZero() && count > r.base {
			r.first = last
		}
	}
}

func eventTime(e *corev1.Event) time.Time {
	if !e.EventTime.IsZero() {
		return e.EventTime.Time
	}
	return e.FirstTimestamp.Time
}

// ThresholdMet is how often a node's kubelet met an eviction threshold
// from Since on, and when first and last.
type ThresholdMet struct {
	Node        string
	Count       int
	First, Last time.Time
}

// Thresholds returns the nodes' EvictionThresholdMet events, by node.
func (t *Tracker) Thresholds() []ThresholdMet {
	t.mu.Lock()
	defer t.mu.Unlock()
	by := map[string]*ThresholdMet{}
	for _, r := range t.threshold {
		n := int(r.count - r.base)
		if n <= 0 {
			continue
		}
		m := by[r.node]
		if m == nil {
			m = &ThresholdMet{Node: r.node, First: r.first, Last: r.last}
			by[r.node] = m
		}
		m.Count += n
		if r.first.Before(m.First) {
			m.First = r.first
		}
		if r.last.After(m.Last) {
			m.Last = r.last
		}
	}
	out := make([]ThresholdMet, 0, len(by))
	for _, m := range by {
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].First.Before(out[j].First) })
	return out
}

// Seed records an eviction directly (one saved by a controller that has
// since restarted); a pod seen again later is not counted twice.
func (t *Tracker) Seed(e Eviction) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if prev, ok := t.seen[e.Namespace+"/"+e.Pod]; ok {
		t.seen[e.Namespace+"/"+e.Pod] = fill(prev, e)
	} else {
		t.seen[e.Namespace+"/"+e.Pod] = e
	}
}

// Strip keeps what the pod analyzers read of a pod, this tracker's and
// oomkills', and why a pending pod is not scheduled: an informer transform that cuts the memory of a 30,000-pod
// cache by an order of magnitude. Container statuses are kept only where
// they show an OOM kill; the QoS class is interned, and the message kept
// only on evicted pods, so that running pods cost no more than before.
func Strip(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion,
			CreationTimestamp: p.CreationTimestamp, Labels: p.Labels, OwnerReferences: p.OwnerReferences, DeletionTimestamp: p.DeletionTimestamp},
		Spec: corev1.PodSpec{NodeName: p.Spec.NodeName, Priority: p.Spec.Priority},
		Status: corev1.PodStatus{Phase: p.Status.Phase, Reason: p.Status.Reason, QOSClass: qosClasses[p.Status.QOSClass],
			InitContainerStatuses: oomkills.KeepKills(p.Status.InitContainerStatuses), ContainerStatuses: oomkills.KeepKills(p.Status.ContainerStatuses)},
	}
	if p.Status.Reason == Evicted {
		out.Status.Message = p.Status.Message
	}
	for _, c := range p.Status.Conditions {
		// An unscheduled pod keeps the scheduler's reason: a Surge fault
		// says why its pods wait. Scheduled pods keep none of it.
		unscheduled := c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse
		if c.Type == corev1.DisruptionTarget || c.Type == corev1.PodReady || unscheduled {
			out.Status.Conditions = append(out.Status.Conditions, c)
		}
	}
	return out, nil
}

var qosClasses = map[corev1.PodQOSClass]corev1.PodQOSClass{
	corev1.PodQOSGuaranteed: corev1.PodQOSGuaranteed, corev1.PodQOSBurstable: corev1.PodQOSBurstable, corev1.PodQOSBestEffort: corev1.PodQOSBestEffort}

// List returns the evictions, oldest first.
func (t *Tracker) List() []Eviction {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Eviction, 0, len(t.seen))
	for _, e := range t.seen {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.Before(out[j].At)
		}
		return out[i].Namespace+"/"+out[i].Pod < out[j].Namespace+"/"+out[j].Pod
	})
	return out
}

// maxOrder bounds the order listed in the measurements; orderKept judges
// every eviction.
const maxOrder = 100

// Measure: count, peakPerMinute (the most in any 60 s), ratePerMinute over
// the window so far, byNode, byNamespace, byQOSClass and reasons; the
// kubelet's evictions in order, whether that order kept its rule
// (orderKept, orderBreach, bestEffortFirst), its EvictionThresholdMet
// events (thresholdMet, thresholdMetByNode, secondsToThresholdMet); and,
// once the workload is set, the share of it evicted (workloadPods,
// workloadEvicted, lostShare).
func (t *Tracker) Measure(now time.Time) map[string]any {
	list := t.List()
	byNode, byNS, byQOS, reasons := map[string]any{}, map[string]any{}, map[string]any{}, map[string]any{}
	inc := func(m map[string]any, k string) { n, _ := m[k].(int64); m[k] = n + 1 }
	peak, j, violations := 0, 0, 0
	order := []any{}
	for i, e := range list {
		if e.ViolatedPDB != "" {
			violations++
		}
		inc(byNode, e.Node)
		inc(byNS, e.Namespace)
		inc(reasons, e.Reason)
		if e.QOSClass != "" {
			inc(byQOS, string(e.QOSClass))
		}
		for list[j].At.Before(e.At.Add(-time.Minute)) {
			j++
		}
		if n := i - j + 1; n > peak {
			peak = n
		}
		if e.Reason == Evicted && len(order) < maxOrder {
			order = append(order, map[string]any{"namespace": e.Namespace, "pod": e.Pod, "node": e.Node, "qosClass": string(e.QOSClass),
				"priority": int64(e.Priority), "resource": e.Resource, "seconds": e.At.Sub(t.Since).Seconds()})
		}
	}
	rate := 0.0
	if mins := now.Sub(t.Since).Minutes(); mins > 0 {
		rate = float64(len(list)) / mins
	}
	m := map[string]any{
		"count":         int64(len(list)),
		"peakPerMinute": int64(peak),
		"ratePerMinute": rate,
		"byNode":        byNode,
		"byNamespace":   byNS,
		"byQOSClass":    byQOS,
		"reasons":       reasons,
		"nodes":         int64(len(byNode)),
		"namespaces":    int64(len(byNS)),
		"pdbViolations": int64(violations),
		"order":         order,
	}
	breach, bestEffortFirst := judgeOrder(list)
	m["orderKept"], m["bestEffortFirst"] = breach == "", bestEffortFirst
	if breach != "" {
		m["orderBreach"] = breach
	}
	met, metByNode := int64(0), map[string]any{}
	var firstMet time.Time
	for _, th := range t.Thresholds() {
		met += int64(th.Count)
		metByNode[th.Node] = int64(th.Count)
		if firstMet.IsZero() || th.First.Before(firstMet) {
			firstMet = th.First
		}
	}
	m["thresholdMet"], m["thresholdMetByNode"] = met, metByNode
	t.mu.Lock()
	m["admissionsRefused"] = int64(len(t.rejected))
	t.mu.Unlock()
	if met > 0 {
		m["secondsToThresholdMet"] = firstMet.Sub(t.Since).Seconds()
	}
	t.mu.Lock()
	workload, size := t.workload, t.workloadSize
	t.mu.Unlock()
	if size > 0 {
		lost := 0
		for _, e := range list {
			if workload[e.Namespace+"/"+e.Pod] {
				lost++
			}
		}
		m["workloadPods"], m["workloadEvicted"] = int64(size), int64(lost)
		m["lostShare"] = 100 * float64(lost) / float64(size)
	}
	return m
}

// ranksBefore reports whether the kubelet surely ranks pod b before pod a
// for eviction under memory pressure. Its documented rule (and
// rankMemoryPressure): first the pods whose usage exceeds their requests,
// then the others; within each, lower priority first, then more usage
// above the request. A BestEffort pod always exceeds its requests (none);
// a Guaranteed pod never does (its limits are its requests); a Burstable
// pod may or may not, and its usage is not observed here. So b surely goes
// first when
//   - b is BestEffort and a Guaranteed: b exceeds, a does not;
//   - both are BestEffort, or both Guaranteed, and b has a lower priority;
//   - b is BestEffort, a Burstable, and b has a lower priority: b goes
//     first whether a exceeds its requests (priority) or not (b exceeds);
//   - b is Burstable, a Guaranteed, and b has a lower priority: likewise.
//
// Two Burstable pods are not compared, nor a Burstable after a BestEffort
// or a Guaranteed after a Burstable: which exceeded its requests decides,
// unseen. Equal priorities are decided by usage, unseen too.
func ranksBefore(b, a Eviction) bool {
	const be, bu, g = corev1.PodQOSBestEffort, corev1.PodQOSBurstable, corev1.PodQOSGuaranteed
	switch {
	case b.QOSClass == be && a.QOSClass == g:
		return true
	case b.QOSClass == a.QOSClass && b.QOSClass != bu,
		b.QOSClass == be && a.QOSClass == bu,
		b.QOSClass == bu && a.QOSClass == g:
		return b.Priority < a.Priority
	}
	return false
}

// judgeOrder checks the kubelet's memory evictions (list is oldest first)
// on each node against its rule: breach describes the first pod evicted
// before one the kubelet surely ranks before it, "" if none. Only pods
// there at the earlier eviction are compared (one created later was not
// there to rank), and pods of unknown class (seen only through an Event)
// are skipped. bestEffortFirst: on every node where a BestEffort pod was
// evicted, the first eviction was of a BestEffort pod.
func judgeOrder(list []Eviction) (breach string, bestEffortFirst bool) {
	byNode := map[string][]Eviction{}
	var nodes []string
	for _, e := range list {
		if e.Reason != Evicted || e.Resource != string(corev1.ResourceMemory) || e.QOSClass == "" {
			continue
		}
		if byNode[e.Node] == nil {
			nodes = append(nodes, e.Node)
		}
		byNode[e.Node] = append(byNode[e.Node], e)
	}
	bestEffortFirst = true
	for _, n := range nodes {
		evs := byNode[n]
		firstBE, anyBE := false, false
		for _, e := range evs {
			// Evicted in the same second as the first: as good as first.
			if e.At.Equal(evs[0].At) && e.QOSClass == corev1.PodQOSBestEffort {
				firstBE = true
			}
			anyBE = anyBE || e.QOSClass == corev1.PodQOSBestEffort && !e.Created.After(evs[0].At)
		}
		if anyBE && !firstBE {
			bestEffortFirst = false
		}
		for i, a := range evs {
			for _, b := range evs[i+1:] {
				if breach == "" && b.At.After(a.At) && !b.Created.After(a.At) && ranksBefore(b, a) {
					breach = fmt.Sprintf("on %s, %s/%s (%s, priority %d) was evicted before %s/%s (%s, priority %d)",
						n, a.Namespace, a.Pod, a.QOSClass, a.Priority, b.Namespace, b.Pod, b.QOSClass, b.Priority)
				}
			}
		}
	}
	return breach, bestEffortFirst
}

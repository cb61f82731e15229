// Package report turns a finished Experiment into a report that outlives
// the cluster: a stable, versioned model, and its JSON, Markdown (a pull
// request comment), JUnit XML (a CI test report) and HTML (one
// self-contained page with charts) renderings.
package report

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"faultline.dev/faultline/analyzers/measures"
	"faultline.dev/faultline/analyzers/slo"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// APIVersion versions the JSON model: fields are added, never renamed or
// removed, within a version.
const APIVersion = "faultline.dev/report/v1"

// Kinds of report.
const (
	KindExperiment = "ExperimentReport"
	KindGameday    = "GamedayReport"
)

// Report is one experiment, as it ended.
type Report struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Experiment is which experiment this is.
	Experiment Identity `json:"experiment"`
	// Spec summarises what was asked.
	Spec Spec `json:"spec"`
	// Phase, Verdict and Message are the experiment's end.
	Phase   string `json:"phase"`
	Verdict string `json:"verdict"`
	Message string `json:"message,omitempty"`
	// Start is when the first fault was scheduled; End the last timeline
	// entry, or the last fault's end.
	Start *time.Time `json:"start,omitempty"`
	End   *time.Time `json:"end,omitempty"`
	// Objectives and how each was judged.
	Objectives []Objective `json:"objectives,omitempty"`
	// Measurements by name, as the objectives saw them.
	Measurements map[string]string `json:"measurements,omitempty"`
	// Timeline of what happened, oldest first.
	Timeline []Event `json:"timeline,omitempty"`
	// Traffic is what the experiment's requests met over time.
	Traffic *Traffic `json:"traffic,omitempty"`
	// NotReady are the periods target nodes were NotReady.
	NotReady []Span `json:"notReady,omitempty"`
	// Taints added to and removed from target nodes.
	Taints []Taint `json:"taints,omitempty"`
	// Evictions seen, oldest first.
	Evictions []Eviction `json:"evictions,omitempty"`
	// Fsync is etcd's WAL fsync p99 per window, where it was measured.
	Fsync []FsyncWindow `json:"fsync,omitempty"`
	// Records of each fault on each target.
	Records []Record `json:"records,omitempty"`
	// Notes say what the report left out, such as traffic trimmed to fit
	// a ConfigMap.
	Notes []string `json:"notes,omitempty"`
}

// Identity names the experiment.
type Identity struct {
	Namespace string     `json:"namespace,omitempty"`
	Name      string     `json:"name"`
	UID       string     `json:"uid,omitempty"`
	Created   *time.Time `json:"created,omitempty"`
}

// Spec is what the experiment asked for.
type Spec struct {
	// Selector describes the targets as asked (nodes, pods or a Deployment).
	Selector string `json:"selector,omitempty"`
	// Targets resolved, as NAMESPACE/POD or node names.
	Targets []string `json:"targets,omitempty"`
	Faults  []Fault  `json:"faults"`
	// TrafficURL and TrafficRate (req/s) of the experiment's traffic.
	TrafficURL  string `json:"trafficURL,omitempty"`
	TrafficRate int32  `json:"trafficRate,omitempty"`
	DryRun      bool   `json:"dryRun,omitempty"`
}

// Fault is one fault of the spec with its window.
type Fault struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// StartAfter and Duration as in the spec, such as 30s.
	StartAfter string `json:"startAfter,omitempty"`
	Duration   string `json:"duration"`
	// From and To are the fault's window, known once the experiment
	// started.
	From *time.Time `json:"from,omitempty"`
	To   *time.Time `json:"to,omitempty"`
	// Parameters are the type's own, with the API's field names.
	Parameters json.RawMessage `json:"parameters,omitempty"`
}

// Objective is an SLO and its judgement.
type Objective struct {
	Name    string `json:"name"`
	Expr    string `json:"expr"`
	Abort   bool   `json:"abort,omitempty"`
	Verdict string `json:"verdict"`
	// Message names the measurements the expression read, with values.
	Message string `json:"message,omitempty"`
	// Measured are the measurements the expression names.
	Measured map[string]string `json:"measured,omitempty"`
}

// Event is one timeline entry.
type Event struct {
	Time    time.Time `json:"time"`
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
}

// Traffic is the traffic's buckets over time.
type Traffic struct {
	URL     string   `json:"url,omitempty"`
	Buckets []Bucket `json:"buckets,omitempty"`
}

// Bucket is one period of traffic.
type Bucket struct {
	Start   time.Time        `json:"start"`
	Seconds int32            `json:"seconds"`
	Sent    int64            `json:"sent"`
	Status  map[string]int64 `json:"status,omitempty"`
	Errors  map[string]int64 `json:"errors,omitempty"`
	// LatencyP99Seconds of the answered requests; absent when none were.
	LatencyP99Seconds *float64 `json:"latencyP99Seconds,omitempty"`
}

// Span is a NotReady period of a node; To is unset while it lasted.
type Span struct {
	Node string     `json:"node"`
	From time.Time  `json:"from"`
	To   *time.Time `json:"to,omitempty"`
}

// Taint is a taint added to or removed from a node.
type Taint struct {
	Node  string    `json:"node"`
	Taint string    `json:"taint"`
	Added bool      `json:"added"`
	Time  time.Time `json:"time"`
}

// Eviction is one pod disrupted.
type Eviction struct {
	Pod         string    `json:"pod"`
	Node        string    `json:"node,omitempty"`
	Reason      string    `json:"reason"`
	Time        time.Time `json:"time"`
	QOSClass    string    `json:"qosClass,omitempty"`
	Priority    int32     `json:"priority,omitempty"`
	Resource    string    `json:"resource,omitempty"`
	ViolatedPDB string    `json:"violatedPDB,omitempty"`
}

// FsyncWindow is etcd's WAL fsync in one measurement window.
type FsyncWindow struct {
	// Window: baseline, fault or recovery.
	Window     string  `json:"window"`
	P99Seconds float64 `json:"p99Seconds"`
	// Fsyncs observed in the window, when known.
	Fsyncs *float64 `json:"fsyncs,omitempty"`
}

// Record is one fault on one target.
type Record struct {
	Fault string `json:"fault"`
	// Round of a fault that acts again every interval (PodKill), from 1.
	Round     int32      `json:"round,omitempty"`
	Target    string     `json:"target"`
	Node      string     `json:"node,omitempty"`
	Action    string     `json:"action,omitempty"`
	Injected  *time.Time `json:"injected,omitempty"`
	Recovered *time.Time `json:"recovered,omitempty"`
	Effect    string     `json:"effect,omitempty"`
	Error     string     `json:"error,omitempty"`
}

// FsyncWindows are the Prometheus windows, in time order.
var FsyncWindows = []string{"baseline", "fault", "recovery"}

// FromExperiment builds the report of an experiment. Times are kept in UTC
// so that a report reads the same wherever it is rendered.
func FromExperiment(exp *v1alpha1.Experiment) *Report {
	st := &exp.Status
	r := &Report{
		APIVersion: APIVersion,
		Kind:       KindExperiment,
		Experiment: Identity{Namespace: exp.Namespace, Name: exp.Name, UID: string(exp.UID), Created: tp(&exp.CreationTimestamp)},
		Phase:      string(st.Phase),
		Verdict:    string(st.Verdict),
		Message:    st.Message,
		Start:      tp(st.StartTime),
	}
	r.Spec = spec(exp)
	for _, o := range st.Objectives {
		obj := Objective{Name: o.Name, Expr: o.Expr, Verdict: string(o.Verdict), Message: o.Message}
		for _, so := range exp.Spec.Objectives {
			if so.Name == o.Name {
				obj.Abort = so.Abort
			}
		}
		for k, v := range st.Measurements {
			if slo.Names(o.Expr, k) {
				if obj.Measured == nil {
					obj.Measured = map[string]string{}
				}
				obj.Measured[k] = v
			}
		}
		r.Objectives = append(r.Objectives, obj)
	}
	if len(st.Measurements) > 0 {
		r.Measurements = make(map[string]string, len(st.Measurements))
		for k, v := range st.Measurements {
			r.Measurements[k] = v
		}
	}
	for _, e := range st.Timeline {
		r.Timeline = append(r.Timeline, Event{Time: e.Time.UTC(), Reason: e.Reason, Message: e.Message})
	}
	if len(st.Traffic) > 0 || st.TrafficURL != "" {
		r.Traffic = &Traffic{URL: st.TrafficURL}
		for _, b := range st.Traffic {
			nb := Bucket{Start: b.Start.UTC(), Seconds: b.Seconds, Sent: b.Sent, Status: b.Status, Errors: b.Errors}
			if d, err := time.ParseDuration(b.LatencyP99); err == nil {
				s := d.Seconds()
				nb.LatencyP99Seconds = &s
			}
			r.Traffic.Buckets = append(r.Traffic.Buckets, nb)
		}
	}
	for _, s := range st.NodeSpans {
		r.NotReady = append(r.NotReady, Span{Node: s.Node, From: s.From.UTC(), To: tp(s.To)})
	}
	for _, t := range st.Taints {
		r.Taints = append(r.Taints, Taint{Node: t.Node, Taint: t.Taint, Added: t.Added, Time: t.Time.UTC()})
	}
	for _, e := range st.Evictions {
		r.Evictions = append(r.Evictions, Eviction{Pod: e.Pod, Node: e.Node, Reason: e.Reason, Time: e.Time.UTC(),
			QOSClass: e.QOSClass, Priority: e.Priority, Resource: e.Resource, ViolatedPDB: e.ViolatedPDB})
	}
	sort.SliceStable(r.Evictions, func(i, j int) bool { return r.Evictions[i].Time.Before(r.Evictions[j].Time) })
	for _, w := range FsyncWindows {
		p, err := strconv.ParseFloat(st.Measurements["prometheus."+w+".walFsyncP99"], 64)
		if err != nil {
			continue
		}
		fw := FsyncWindow{Window: w, P99Seconds: p}
		if n, err := strconv.ParseFloat(st.Measurements["prometheus."+w+".walFsyncs"], 64); err == nil {
			fw.Fsyncs = &n
		}
		r.Fsync = append(r.Fsync, fw)
	}
	for _, rec := range st.Records {
		r.Records = append(r.Records, Record{Fault: rec.Fault, Round: rec.Round, Target: rec.Target, Node: rec.Node, Action: rec.Action,
			Injected: tp(rec.InjectedAt), Recovered: tp(rec.RecoveredAt), Effect: rec.Effect, Error: rec.Error})
	}
	r.End = end(r)
	return r
}

func spec(exp *v1alpha1.Experiment) Spec {
	s := Spec{Targets: exp.Status.Targets, DryRun: exp.Spec.DryRun}
	switch t := exp.Spec.Targets; {
	case t.Nodes != nil && len(t.Nodes.Names) > 0:
		s.Selector = "nodes " + strings.Join(t.Nodes.Names, ", ")
	case t.Nodes != nil && t.Nodes.Selector != nil:
		s.Selector = "nodes matching " + metav1.FormatLabelSelector(t.Nodes.Selector)
	case t.Pods != nil:
		s.Selector = "pods in " + strings.Join(t.Pods.Namespaces, ", ")
		if len(t.Pods.LabelSelectors) > 0 {
			s.Selector += " matching " + metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: t.Pods.LabelSelectors})
		}
	case t.Deployment != "":
		s.Selector = "deployment " + exp.Namespace + "/" + t.Deployment
	}
	if tr := exp.Spec.Traffic; tr != nil {
		s.TrafficURL, s.TrafficRate = tr.URL, tr.Rate
	}
	for _, f := range exp.Spec.Faults {
		rf := Fault{Name: f.Name, Type: string(f.Type), Duration: f.Duration.Duration.String()}
		var after time.Duration
		if f.StartAfter != nil {
			after = f.StartAfter.Duration
			rf.StartAfter = after.String()
		}
		if st := exp.Status.StartTime; st != nil {
			from := st.UTC().Add(after)
			to := from.Add(f.Duration.Duration)
			rf.From, rf.To = &from, &to
		}
		var params any
		switch {
		case f.NetworkLoss != nil:
			params = f.NetworkLoss
		case f.Rollout != nil:
			params = f.Rollout
		case f.DiskLatency != nil:
			params = f.DiskLatency
		case f.MemoryPressure != nil:
			params = f.MemoryPressure
		}
		if params != nil {
			rf.Parameters, _ = json.Marshal(params)
		}
		s.Faults = append(s.Faults, rf)
	}
	return s
}

// end is the latest moment the report knows of.
func end(r *Report) *time.Time {
	var last time.Time
	later := func(t *time.Time) {
		if t != nil && t.After(last) {
			last = *t
		}
	}
	for i := range r.Timeline {
		later(&r.Timeline[i].Time)
	}
	for i := range r.Spec.Faults {
		later(r.Spec.Faults[i].To)
	}
	if last.IsZero() {
		return nil
	}
	return &last
}

func tp(t *metav1.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// Figure is a named measurement.
type Figure struct{ Name, Value string }

// Figures are the report's key figures.
func (r *Report) Figures() []Figure {
	var out []Figure
	for _, k := range measures.KeyFigures {
		if v, ok := r.Measurements[k]; ok {
			out = append(out, Figure{k, v})
		}
	}
	return out
}

package report

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// t0 is the fixtures' start: fixed, so that every rendering is stable.
var t0 = time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)

func at(seconds float64) metav1.Time {
	return metav1.NewTime(t0.Add(time.Duration(seconds * float64(time.Second))))
}

func atp(seconds float64) *metav1.Time {
	t := at(seconds)
	return &t
}

// option changes a fixture experiment.
type option func(*v1alpha1.Experiment)

// experiment is a finished experiment named name that started at t0, with
// the options applied in order.
func experiment(name string, opts ...option) *v1alpha1.Experiment {
	exp := &v1alpha1.Experiment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name, UID: types.UID("uid-" + name), CreationTimestamp: at(-60)},
		Spec:       v1alpha1.ExperimentSpec{Targets: v1alpha1.Targets{Nodes: &v1alpha1.NodeTargets{Names: []string{"worker-1"}}}},
		Status: v1alpha1.ExperimentStatus{Phase: v1alpha1.PhasePassed, Verdict: v1alpha1.VerdictPassed,
			StartTime: atp(0), Targets: []string{"worker-1"}, Measurements: map[string]string{}},
	}
	for _, o := range opts {
		o(exp)
	}
	return exp
}

func withVerdict(phase v1alpha1.Phase, v v1alpha1.Verdict, msg string) option {
	return func(e *v1alpha1.Experiment) { e.Status.Phase, e.Status.Verdict, e.Status.Message = phase, v, msg }
}

// withPartition is a NetworkLoss fault toward the API server.
func withPartition(name string, after, seconds float64) option {
	return func(e *v1alpha1.Experiment) {
		e.Spec.Faults = append(e.Spec.Faults, v1alpha1.Fault{Name: name, Type: v1alpha1.FaultNetworkLoss,
			StartAfter: &metav1.Duration{Duration: time.Duration(after) * time.Second}, Duration: metav1.Duration{Duration: time.Duration(seconds) * time.Second},
			NetworkLoss: &v1alpha1.NetworkLoss{LossPercent: 100, TowardAPIServer: true}})
		e.Status.Records = append(e.Status.Records, v1alpha1.InjectionRecord{Fault: name, Target: "worker-1", Node: "worker-1",
			InjectedAt: atp(after), RecoveredAt: atp(after + seconds), Effect: "100% loss toward 10.0.0.1:6443"})
		e.Status.Timeline = append(e.Status.Timeline,
			v1alpha1.TimelineEntry{Time: at(after), Reason: "Injected", Message: name + " injected on worker-1"},
			v1alpha1.TimelineEntry{Time: at(after + seconds), Reason: "Recovered", Message: name + " recovered on worker-1"})
	}
}

// withObjective is an objective and its judgement.
func withObjective(name, expr string, v v1alpha1.Verdict, msg string) option {
	return func(e *v1alpha1.Experiment) {
		e.Spec.Objectives = append(e.Spec.Objectives, v1alpha1.Objective{Name: name, Expr: expr})
		e.Status.Objectives = append(e.Status.Objectives, v1alpha1.ObjectiveResult{Name: name, Expr: expr, Verdict: v, Message: msg})
	}
}

func withMeasurement(key, value string) option {
	return func(e *v1alpha1.Experiment) { e.Status.Measurements[key] = value }
}

// withTraffic is rate req/s for seconds from -baseline, failing with 503s
// between failFrom and failTo, p99 higher there.
func withTraffic(baseline, seconds int, rate int64, failFrom, failTo int) option {
	return func(e *v1alpha1.Experiment) {
		e.Spec.Traffic = &v1alpha1.Traffic{URL: "http://web.team-a.svc/", Rate: int32(rate)}
		e.Status.TrafficURL = "http://10.96.0.10/"
		for s := -baseline; s < seconds; s++ {
			b := v1alpha1.TrafficBucket{Start: at(float64(s)), Seconds: 1, Sent: rate, Status: map[string]int64{"200": rate}, LatencyP99: "12ms"}
			if s >= failFrom && s < failTo {
				b.Status = map[string]int64{"200": rate - rate/4 - rate/10, "503": rate / 4}
				b.Errors = map[string]int64{"http503": rate / 4, "timeout": rate / 10}
				b.LatencyP99 = "850ms"
			}
			e.Status.Traffic = append(e.Status.Traffic, b)
		}
	}
}

func withNotReady(node string, from, to float64) option {
	return func(e *v1alpha1.Experiment) {
		e.Status.NodeSpans = append(e.Status.NodeSpans, v1alpha1.NodeSpan{Node: node, From: at(from), To: atp(to)})
	}
}

func withEvictions(n int, from float64) option {
	return func(e *v1alpha1.Experiment) {
		for i := range n {
			e.Status.Evictions = append(e.Status.Evictions, v1alpha1.EvictionRecord{Pod: fmt.Sprintf("team-a/web-%d", i), Node: "worker-1",
				Reason: "TaintManagerEviction", Time: at(from + float64(3*i)), QOSClass: "Burstable", Priority: int32(100 * i)})
		}
	}
}

// partitioned is the fixture most tests share: a node cut from the API
// server for 60 s under traffic, evictions and a failed objective.
func partitioned(opts ...option) *v1alpha1.Experiment {
	base := []option{
		withPartition("partition", 0, 60),
		withTraffic(10, 90, 100, 20, 35),
		withNotReady("worker-1", 40, 75),
		withEvictions(3, 50),
		withMeasurement("nodes.maxNotReadySeconds", "35"),
		withMeasurement("nodes.notReadyNodes", "1"),
		withMeasurement("evictions.count", "3"),
		withMeasurement("traffic.requests", "10000"),
		withMeasurement("traffic.errors", "750"),
		withMeasurement("traffic.latency.p99", "0.85"),
		withMeasurement("prometheus.baseline.walFsyncP99", "0.004"),
		withMeasurement("prometheus.fault.walFsyncP99", "0.032"),
		withMeasurement("prometheus.recovery.walFsyncP99", "0.005"),
		withMeasurement("prometheus.fault.walFsyncs", "1200"),
		withObjective("node comes back", "nodes.maxNotReadySeconds <= 60", v1alpha1.VerdictPassed, "nodes.maxNotReadySeconds <= 60 with nodes.maxNotReadySeconds = 35"),
		withObjective("no evictions", "evictions.count == 0", v1alpha1.VerdictFailed, "evictions.count == 0 with evictions.count = 3"),
		withObjective("fsync p99", "prometheus.fault.walFsyncP99 < 0.05", v1alpha1.VerdictPassed, ""),
		withObjective("no OOM kills", "oom.kills == 0", v1alpha1.VerdictInconclusive, "oom.kills == 0: not measured"),
		withVerdict(v1alpha1.PhaseFailed, v1alpha1.VerdictFailed, "1 of 4 objective(s) not met: no evictions"),
	}
	return experiment("node-partition", append(base, opts...)...)
}

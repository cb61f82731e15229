package schedule

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// t0 is when the test Schedules are created: 10:00:30, so the first
// every-minute slot is 10:01.
var t0 = time.Date(2026, 5, 1, 10, 0, 30, 0, time.UTC)

func dryRunSpec() v1alpha1.ExperimentSpec {
	return v1alpha1.ExperimentSpec{
		Targets: v1alpha1.Targets{Nodes: &v1alpha1.NodeTargets{Names: []string{"isolated-0"}}},
		Faults: []v1alpha1.Fault{{Name: "cut", Type: v1alpha1.FaultNetworkLoss, Duration: metav1.Duration{Duration: 5 * time.Second},
			NetworkLoss: &v1alpha1.NetworkLoss{LossPercent: 100, TowardAPIServer: true}}},
		DryRun: true,
	}
}

type option func(*v1alpha1.Schedule)

func newSchedule(opts ...option) *v1alpha1.Schedule {
	s := &v1alpha1.Schedule{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Schedule"},
		ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "default", UID: "uid-nightly", Generation: 1, CreationTimestamp: metav1.NewTime(t0)},
		Spec: v1alpha1.ScheduleSpec{
			Schedule: "* * * * *",
			Template: v1alpha1.ScheduleTemplate{Experiment: ptr.To(dryRunSpec())},
		},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func withCron(c string) option { return func(s *v1alpha1.Schedule) { s.Spec.Schedule = c } }
func withZone(z string) option { return func(s *v1alpha1.Schedule) { s.Spec.TimeZone = z } }
func withPolicy(p v1alpha1.ConcurrencyPolicy) option {
	return func(s *v1alpha1.Schedule) { s.Spec.ConcurrencyPolicy = p }
}
func suspended() option { return func(s *v1alpha1.Schedule) { s.Spec.Suspend = true } }
func withLimits(ok, bad int32) option {
	return func(s *v1alpha1.Schedule) {
		s.Spec.SuccessfulRunsHistoryLimit, s.Spec.FailedRunsHistoryLimit = &ok, &bad
	}
}
func withGameday(steps ...v1alpha1.GamedayStep) option {
	return func(s *v1alpha1.Schedule) {
		s.Spec.Template = v1alpha1.ScheduleTemplate{Gameday: &v1alpha1.Gameday{Steps: steps}}
	}
}
func step(name string, onFailure v1alpha1.OnFailure) v1alpha1.GamedayStep {
	return v1alpha1.GamedayStep{Name: name, Experiment: dryRunSpec(), OnFailure: onFailure}
}

type harness struct {
	c       client.Client
	r       *Reconciler
	clk     *clocktesting.FakeClock
	rec     *record.FakeRecorder
	metrics *Metrics
	key     types.NamespacedName
}

func newHarness(t *testing.T, s *v1alpha1.Schedule) *harness {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(s).
		WithStatusSubresource(&v1alpha1.Schedule{}, &v1alpha1.Experiment{}).Build()
	h := &harness{c: c, clk: clocktesting.NewFakeClock(t0), rec: record.NewFakeRecorder(100), metrics: NewMetrics(prometheus.NewRegistry()),
		key: client.ObjectKeyFromObject(s)}
	h.r = &Reconciler{Client: c, Recorder: h.rec, Clock: h.clk, Metrics: h.metrics}
	return h
}

// at moves the fake clock to a minute after t0's minute plus a few
// seconds, and reconciles.
func (h *harness) at(t *testing.T, minute int) ctrl.Result {
	t.Helper()
	h.clk.SetTime(t0.Truncate(time.Minute).Add(time.Duration(minute)*time.Minute + 5*time.Second))
	return h.reconcile(t)
}

func (h *harness) reconcile(t *testing.T) ctrl.Result {
	t.Helper()
	res, err := h.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: h.key})
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	return res
}

func (h *harness) schedule(t *testing.T) *v1alpha1.Schedule {
	t.Helper()
	var s v1alpha1.Schedule
	if err := h.c.Get(context.Background(), h.key, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

func (h *harness) update(t *testing.T, f func(*v1alpha1.Schedule)) {
	t.Helper()
	s := h.schedule(t)
	f(s)
	if err := h.c.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

// experiments lists the Experiments by name.
func (h *harness) experiments(t *testing.T) []string {
	t.Helper()
	var list v1alpha1.ExperimentList
	if err := h.c.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range list.Items {
		names = append(names, e.Name)
	}
	sort.Strings(names)
	return names
}

// finish ends an Experiment in a phase, as the Experiment controller
// would.
func (h *harness) finish(t *testing.T, name string, phase v1alpha1.Phase) {
	t.Helper()
	var e v1alpha1.Experiment
	if err := h.c.Get(context.Background(), types.NamespacedName{Namespace: "default", Name: name}, &e); err != nil {
		t.Fatal(err)
	}
	e.Status.Phase = phase
	e.Status.Verdict = map[v1alpha1.Phase]v1alpha1.Verdict{v1alpha1.PhasePassed: v1alpha1.VerdictPassed, v1alpha1.PhaseFailed: v1alpha1.VerdictFailed,
		v1alpha1.PhaseError: v1alpha1.VerdictError, v1alpha1.PhaseAborted: v1alpha1.VerdictFailed}[phase]
	if err := h.c.Status().Update(context.Background(), &e); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) events() []string {
	var out []string
	for {
		select {
		case e := <-h.rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func hasEvent(events []string, want string) bool {
	for _, e := range events {
		if strings.Contains(e, want) {
			return true
		}
	}
	return false
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

// run names of slot minute m after t0's minute.
func runAt(m int) string {
	return RunName("nightly", t0.Truncate(time.Minute).Add(time.Duration(m)*time.Minute), false)
}

func TestReconciler(t *testing.T) {
	tests := map[string]struct {
		schedule *v1alpha1.Schedule
		script   func(t *testing.T, h *harness)
	}{
		"a slot starts one experiment named for it, labelled and owned by the schedule": {
			schedule: newSchedule(),
			script: func(t *testing.T, h *harness) {
				res := h.at(t, 0)
				equal(t, "before the first slot", h.experiments(t), nil)
				if res.RequeueAfter != 55*time.Second {
					t.Errorf("requeue after %s, want 55s (the next slot)", res.RequeueAfter)
				}
				h.at(t, 1)
				equal(t, "at the first slot", h.experiments(t), []string{runAt(1)})
				var e v1alpha1.Experiment
				if err := h.c.Get(context.Background(), types.NamespacedName{Namespace: "default", Name: runAt(1)}, &e); err != nil {
					t.Fatal(err)
				}
				if e.Labels[v1alpha1.LabelSchedule] != "nightly" || e.Labels[v1alpha1.LabelScheduleRun] != runAt(1) || e.Labels[v1alpha1.LabelScheduleSlot] != SlotLabel(t0.Truncate(time.Minute).Add(time.Minute)) {
					t.Errorf("labels %v", e.Labels)
				}
				if !metav1.IsControlledBy(&e, h.schedule(t)) || !e.Spec.DryRun {
					t.Errorf("owner %v, spec %+v", e.OwnerReferences, e.Spec)
				}
				s := h.schedule(t)
				if s.Status.ActiveCount != 1 || s.Status.Active[0].Experiment != runAt(1) || !s.Status.LastScheduleTime.Equal(ptr.To(metav1.NewTime(t0.Truncate(time.Minute).Add(time.Minute)))) {
					t.Errorf("status %+v", s.Status)
				}
				if c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ScheduleReady); c == nil || c.Status != metav1.ConditionTrue {
					t.Errorf("Ready condition %+v", c)
				}
				if got := value(h.metrics.RunsStarted.WithLabelValues("default", "nightly")); got != 1 {
					t.Errorf("runs started %v, want 1", got)
				}
				if !hasEvent(h.events(), "RunStarted") {
					t.Error("no RunStarted event")
				}
				h.finish(t, runAt(1), v1alpha1.PhasePassed)
				h.reconcile(t)
				s = h.schedule(t)
				if s.Status.ActiveCount != 0 || len(s.Status.LastVerdicts) != 1 || s.Status.LastVerdicts[0].Verdict != v1alpha1.VerdictPassed || s.Status.LastSuccessfulTime == nil {
					t.Errorf("status after the run %+v", s.Status)
				}
				if got := value(h.metrics.RunVerdicts.WithLabelValues("Passed")); got != 1 {
					t.Errorf("passed verdicts %v, want 1", got)
				}
			},
		},
		"one slot never makes two runs, even when the status write was lost": {
			schedule: newSchedule(withPolicy(v1alpha1.ConcurrencyAllow)),
			script: func(t *testing.T, h *harness) {
				h.at(t, 1)
				h.update(t, func(s *v1alpha1.Schedule) {})
				s := h.schedule(t)
				s.Status.LastScheduleTime = nil
				if err := h.c.Status().Update(context.Background(), s); err != nil {
					t.Fatal(err)
				}
				h.reconcile(t) // the same slot again: AlreadyExists is success
				equal(t, "experiments", h.experiments(t), []string{runAt(1)})
				if s := h.schedule(t); s.Status.ActiveCount != 1 {
					t.Errorf("active %d, want 1", s.Status.ActiveCount)
				}
			},
		},
		"Forbid skips a slot while a run is active, with an event and the skipped metric": {
			schedule: newSchedule(withPolicy(v1alpha1.ConcurrencyForbid)),
			script: func(t *testing.T, h *harness) {
				h.at(t, 1)
				h.events()
				h.at(t, 2)
				equal(t, "experiments", h.experiments(t), []string{runAt(1)})
				if !hasEvent(h.events(), "ConcurrencyForbid") {
					t.Error("no ConcurrencyForbid event")
				}
				if got := value(h.metrics.RunsSkipped.WithLabelValues("ConcurrencyForbid")); got != 1 {
					t.Errorf("skipped %v, want 1", got)
				}
				// The skipped slot does not start late once the run ends.
				h.finish(t, runAt(1), v1alpha1.PhasePassed)
				h.reconcile(t)
				equal(t, "after the run ended", h.experiments(t), []string{runAt(1)})
				h.at(t, 3)
				equal(t, "at the next slot", h.experiments(t), []string{runAt(1), runAt(3)})
			},
		},
		"Allow starts a run alongside the active one": {
			schedule: newSchedule(withPolicy(v1alpha1.ConcurrencyAllow)),
			script: func(t *testing.T, h *harness) {
				h.at(t, 1)
				h.at(t, 2)
				equal(t, "experiments", h.experiments(t), []string{runAt(1), runAt(2)})
				if s := h.schedule(t); s.Status.ActiveCount != 2 {
					t.Errorf("active %d, want 2", s.Status.ActiveCount)
				}
			},
		},
		"Replace deletes the active run's experiments and starts the new one": {
			schedule: newSchedule(withPolicy(v1alpha1.ConcurrencyReplace), withGameday(step("one", ""), step("two", ""))),
			script: func(t *testing.T, h *harness) {
				h.at(t, 1)
				h.finish(t, runAt(1)+"-one", v1alpha1.PhasePassed)
				h.reconcile(t)
				equal(t, "the gameday at step two", h.experiments(t), []string{runAt(1) + "-one", runAt(1) + "-two"})
				h.at(t, 2)
				equal(t, "after the replacement", h.experiments(t), []string{runAt(2) + "-one"})
				s := h.schedule(t)
				if s.Status.ActiveCount != 1 || s.Status.Active[0].Run != runAt(2) {
					t.Errorf("active %+v", s.Status.Active)
				}
				if len(s.Status.LastVerdicts) != 1 || s.Status.LastVerdicts[0].Run != runAt(1) || s.Status.LastVerdicts[0].Verdict != v1alpha1.VerdictInconclusive {
					t.Errorf("last verdicts %+v", s.Status.LastVerdicts)
				}
				if !hasEvent(h.events(), "Replaced") {
					t.Error("no Replaced event")
				}
			},
		},
		"suspend starts nothing, and resuming starts only the most recent slot": {
			schedule: newSchedule(suspended()),
			script: func(t *testing.T, h *harness) {
				h.at(t, 1)
				h.at(t, 5)
				equal(t, "while suspended", h.experiments(t), nil)
				if c := meta.FindStatusCondition(h.schedule(t).Status.Conditions, v1alpha1.ScheduleReady); c == nil || c.Reason != "Suspended" {
					t.Errorf("Ready condition %+v", c)
				}
				h.update(t, func(s *v1alpha1.Schedule) { s.Spec.Suspend = false })
				h.reconcile(t)
				equal(t, "resumed", h.experiments(t), []string{runAt(5)})
				if s := h.schedule(t); s.Status.MissedSchedules != 4 {
					t.Errorf("missed %d, want 4", s.Status.MissedSchedules)
				}
			},
		},
		"more than 100 missed slots warn TooManyMissedTimes and start one run": {
			schedule: newSchedule(),
			script: func(t *testing.T, h *harness) {
				h.at(t, 150)
				equal(t, "experiments", h.experiments(t), []string{runAt(150)})
				if !hasEvent(h.events(), "Warning TooManyMissedTimes") {
					t.Error("no TooManyMissedTimes warning")
				}
				if got := value(h.metrics.Missed.WithLabelValues("default", "nightly")); got != 149 {
					t.Errorf("missed gauge %v, want 149", got)
				}
			},
		},
		"a gameday stops at a failed step whose onFailure is Stop: later steps are Skipped": {
			schedule: newSchedule(withGameday(step("one", v1alpha1.OnFailureStop), step("two", ""), step("three", ""))),
			script: func(t *testing.T, h *harness) {
				h.at(t, 1)
				equal(t, "step one", h.experiments(t), []string{runAt(1) + "-one"})
				if a := h.schedule(t).Status.Active; len(a) != 1 || a[0].Step != "one" {
					t.Errorf("active %+v", a)
				}
				h.finish(t, runAt(1)+"-one", v1alpha1.PhaseFailed)
				h.reconcile(t)
				equal(t, "after the failed step", h.experiments(t), []string{runAt(1) + "-one"})
				s := h.schedule(t)
				if s.Status.ActiveCount != 0 || len(s.Status.LastVerdicts) != 1 {
					t.Fatalf("status %+v", s.Status)
				}
				v := s.Status.LastVerdicts[0]
				var steps []string
				for _, st := range v.Steps {
					steps = append(steps, st.Name+"="+st.Phase)
				}
				equal(t, "steps", steps, []string{"one=Failed", "two=Skipped", "three=Skipped"})
				if v.Verdict != v1alpha1.VerdictFailed || !strings.Contains(v.Message, "step one") {
					t.Errorf("verdict %s %q", v.Verdict, v.Message)
				}
			},
		},
		"a gameday goes on past a failed step whose onFailure is Continue": {
			schedule: newSchedule(withGameday(step("one", v1alpha1.OnFailureContinue), step("two", ""))),
			script: func(t *testing.T, h *harness) {
				h.at(t, 1)
				h.finish(t, runAt(1)+"-one", v1alpha1.PhaseFailed)
				h.reconcile(t)
				equal(t, "step two started", h.experiments(t), []string{runAt(1) + "-one", runAt(1) + "-two"})
				if a := h.schedule(t).Status.Active; len(a) != 1 || a[0].Step != "two" {
					t.Errorf("active %+v", a)
				}
				h.finish(t, runAt(1)+"-two", v1alpha1.PhasePassed)
				h.reconcile(t)
				v := h.schedule(t).Status.LastVerdicts
				if len(v) != 1 || v[0].Verdict != v1alpha1.VerdictFailed || len(v[0].Steps) != 2 || v[0].Steps[1].Verdict != v1alpha1.VerdictPassed {
					t.Errorf("last verdicts %+v", v)
				}
			},
		},
		"a gameday whose every step passes passes": {
			schedule: newSchedule(withGameday(step("one", ""), step("two", ""))),
			script: func(t *testing.T, h *harness) {
				h.at(t, 1)
				h.finish(t, runAt(1)+"-one", v1alpha1.PhasePassed)
				h.reconcile(t)
				h.finish(t, runAt(1)+"-two", v1alpha1.PhasePassed)
				h.reconcile(t)
				s := h.schedule(t)
				if v := s.Status.LastVerdicts; len(v) != 1 || v[0].Verdict != v1alpha1.VerdictPassed || s.Status.LastSuccessfulTime == nil {
					t.Errorf("status %+v", s.Status)
				}
			},
		},
		"history limits delete the oldest finished runs, passed and failed apart": {
			schedule: newSchedule(withPolicy(v1alpha1.ConcurrencyAllow), withLimits(2, 1)),
			script: func(t *testing.T, h *harness) {
				phases := []v1alpha1.Phase{v1alpha1.PhasePassed, v1alpha1.PhaseFailed, v1alpha1.PhasePassed, v1alpha1.PhaseFailed, v1alpha1.PhasePassed}
				for m := 1; m <= len(phases); m++ {
					h.at(t, m)
				}
				for i, phase := range phases {
					h.finish(t, runAt(i+1), phase)
				}
				h.at(t, 6) // run 6 stays active
				equal(t, "kept", h.experiments(t), []string{runAt(3), runAt(4), runAt(5), runAt(6)})
				if v := h.schedule(t).Status.LastVerdicts; len(v) != 5 || v[0].Run != runAt(5) {
					t.Errorf("last verdicts keep every run, newest first: %+v", v)
				}
			},
		},
		"a cron expression that does not parse marks the schedule Invalid naming spec.schedule": {
			schedule: newSchedule(withCron("61 * * * *")),
			script: func(t *testing.T, h *harness) {
				h.at(t, 5)
				equal(t, "experiments", h.experiments(t), nil)
				s := h.schedule(t)
				c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ScheduleInvalid)
				if c == nil || c.Status != metav1.ConditionTrue || c.Reason != "InvalidSchedule" || !strings.Contains(c.Message, "spec.schedule") {
					t.Errorf("Invalid condition %+v", c)
				}
				if r := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ScheduleReady); r == nil || r.Status != metav1.ConditionFalse {
					t.Errorf("Ready condition %+v", r)
				}
				ev := h.events()
				if !hasEvent(ev, "Warning Invalid") || !hasEvent(ev, "spec.schedule") {
					t.Errorf("events %v", ev)
				}
				h.reconcile(t)
				if ev := h.events(); hasEvent(ev, "Invalid") {
					t.Errorf("the same problem is reported again: %v", ev)
				}
				h.update(t, func(s *v1alpha1.Schedule) { s.Spec.Schedule = "* * * * *" })
				h.at(t, 6)
				s = h.schedule(t)
				if meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ScheduleInvalid) != nil || len(h.experiments(t)) != 1 {
					t.Errorf("fixed schedule: conditions %+v, experiments %v", s.Status.Conditions, h.experiments(t))
				}
			},
		},
		"an unknown time zone marks the schedule Invalid naming spec.timeZone": {
			schedule: newSchedule(withZone("Mars/Olympus_Mons")),
			script: func(t *testing.T, h *harness) {
				h.at(t, 5)
				equal(t, "experiments", h.experiments(t), nil)
				c := meta.FindStatusCondition(h.schedule(t).Status.Conditions, v1alpha1.ScheduleInvalid)
				if c == nil || c.Reason != "InvalidTimeZone" || !strings.Contains(c.Message, "spec.timeZone") {
					t.Errorf("Invalid condition %+v", c)
				}
			},
		},
		"a starting deadline drops a slot that is too late, as a CronJob does": {
			schedule: newSchedule(withCron("*/10 * * * *"), func(s *v1alpha1.Schedule) { s.Spec.StartingDeadlineSeconds = ptr.To[int64](30) }),
			script: func(t *testing.T, h *harness) {
				h.at(t, 11) // the 10:10 slot is 65s old
				equal(t, "experiments", h.experiments(t), nil)
				h.at(t, 20)
				equal(t, "the next slot on time", h.experiments(t), []string{runAt(20)})
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tc.script(t, newHarness(t, tc.schedule))
		})
	}
}

func TestNewExperimentForAManualTrigger(t *testing.T) {
	s := newSchedule(withGameday(step("one", ""), step("two", "")))
	now := t0.Add(90 * time.Second)
	e := NewExperiment(s, now, true, firstStep(s))
	want := fmt.Sprintf("nightly-%d-manual-one", now.Unix()/60)
	if e.Name != want || e.Annotations[v1alpha1.AnnotationTrigger] != "manual" || e.Labels[v1alpha1.LabelScheduleStep] != "one" {
		t.Errorf("got %s %v %v, want %s", e.Name, e.Annotations, e.Labels, want)
	}
}

// value reads a counter's or a gauge's value.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

package schedule

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// maxVerdicts is how many finished runs status.lastVerdicts keeps.
const maxVerdicts = 10

// Reconciler reconciles Schedules: it starts the runs of their slots and
// moves gameday runs from step to step.
type Reconciler struct {
	client.Client
	Recorder record.EventRecorder
	Clock    clock.PassiveClock
	Metrics  *Metrics
}

// SetupWithManager wires the controller: Schedules, and the Experiments
// they own (a step that ends moves its gameday on).
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Schedule{}).
		Owns(&v1alpha1.Experiment{}).
		Named("schedule").
		Complete(r)
}

func (r *Reconciler) event(s *v1alpha1.Schedule, warning bool, reason, format string, args ...any) {
	if r.Recorder == nil {
		return
	}
	typ := corev1.EventTypeNormal
	if warning {
		typ = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(s, typ, reason, format, args...)
}

// run is one run of a Schedule: the Experiments of one slot.
type run struct {
	name   string
	slot   time.Time
	manual bool
	// byStep holds the run's Experiments by step name ("" for a single
	// experiment).
	byStep   map[string]*v1alpha1.Experiment
	deleting bool

	// Filled by evaluate.
	active   bool
	current  *v1alpha1.Experiment
	step     string
	nextStep *v1alpha1.GamedayStep
	result   v1alpha1.ScheduleRunResult
}

func (u *run) all() []*v1alpha1.Experiment {
	var out []*v1alpha1.Experiment
	for _, e := range u.byStep {
		out = append(out, e)
	}
	return out
}

// Reconcile handles a Schedule's runs and its due slot.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var s v1alpha1.Schedule
	if err := r.Get(ctx, req.NamespacedName, &s); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !s.DeletionTimestamp.IsZero() {
		// The garbage collector deletes the runs' Experiments, whose
		// finalizer recovers their faults.
		return ctrl.Result{}, nil
	}
	now := r.Clock.Now()
	before := s.Status.DeepCopy()
	res, err := r.reconcile(ctx, &s, now)
	s.Status.ObservedGeneration = s.Generation
	if err != nil && !apierrors.IsConflict(err) {
		// A run that could not start (its Experiment refused, the API
		// server away) is said on the Schedule at once, and retried.
		msg := err.Error()
		if len(msg) > 1024 {
			msg = msg[:1021] + "..."
		}
		r.event(&s, true, v1alpha1.ReasonStepFailed, "%s", msg)
		meta.SetStatusCondition(&s.Status.Conditions, metav1.Condition{Type: v1alpha1.ScheduleReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonStepFailed, Message: msg, ObservedGeneration: s.Generation})
	}
	if !equality.Semantic.DeepEqual(before, &s.Status) {
		if uerr := r.Status().Update(ctx, &s); uerr != nil {
			if apierrors.IsConflict(uerr) {
				return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
			}
			return ctrl.Result{}, errors.Join(err, fmt.Errorf("write the status: %w", uerr))
		}
	}
	return res, err
}

func (r *Reconciler) reconcile(ctx context.Context, s *v1alpha1.Schedule, now time.Time) (ctrl.Result, error) {
	runs, err := r.runs(ctx, s)
	if err != nil {
		return ctrl.Result{}, err
	}
	// Move each run along: a gameday's next step once the one before is
	// final.
	for _, u := range runs {
		evaluate(u, s)
		if u.nextStep != nil {
			exp := NewExperiment(s, u.slot, u.manual, u.nextStep)
			if err := r.create(ctx, exp); err != nil {
				return ctrl.Result{}, err
			}
			r.event(s, false, v1alpha1.ReasonStepStarted, "run %s: step %s started (experiment %s)", u.name, u.nextStep.Name, exp.Name)
			u.byStep[u.nextStep.Name], u.current, u.step, u.active = exp, exp, u.nextStep.Name, true
		}
		if !u.active && !u.deleting {
			r.finished(s, u)
		}
	}
	if err := r.prune(ctx, s, runs); err != nil {
		return ctrl.Result{}, err
	}
	sched, ferr := v1alpha1.ParseCron(s.Spec.Schedule, s.Spec.TimeZone)
	if ferr != nil {
		r.invalid(s, ferr.Field, ferr.Error())
		s.Status.Active, s.Status.ActiveCount = activeRefs(runs), int32(len(activeRefs(runs)))
		return ctrl.Result{}, nil
	}
	meta.RemoveStatusCondition(&s.Status.Conditions, v1alpha1.ScheduleInvalid)
	reason, msg := v1alpha1.ReasonScheduled, "following "+s.Spec.Schedule
	if s.Spec.Suspend {
		reason, msg = v1alpha1.ReasonSuspended, "suspended: no new runs"
	}
	meta.SetStatusCondition(&s.Status.Conditions, metav1.Condition{Type: v1alpha1.ScheduleReady, Status: metav1.ConditionTrue, Reason: reason, Message: msg, ObservedGeneration: s.Generation})
	res := ctrl.Result{}
	if !s.Spec.Suspend {
		var started *run
		if res, started, err = r.slot(ctx, s, sched, runs, now); started != nil {
			runs = append(runs, started)
		}
	}
	refs := activeRefs(runs)
	s.Status.Active, s.Status.ActiveCount = refs, int32(len(refs))
	return res, err
}

// slot starts the run of the due slot, if any, under the concurrency
// policy.
func (r *Reconciler) slot(ctx context.Context, s *v1alpha1.Schedule, sched cron.Schedule, runs []*run, now time.Time) (ctrl.Result, *run, error) {
	var deadline *time.Duration
	if d := s.Spec.StartingDeadlineSeconds; d != nil {
		dd := time.Duration(*d) * time.Second
		deadline = &dd
	}
	var last *time.Time
	for _, t := range []*metav1.Time{s.Status.LastScheduleTime, s.Status.LastSkippedTime} {
		if t != nil && (last == nil || t.After(*last)) {
			last = &t.Time
		}
	}
	due := Slots(sched, Earliest(s.CreationTimestamp.Time, last, deadline, now), now)
	next := ctrl.Result{RequeueAfter: max(due.Next.Sub(now), time.Second)}
	if due.Slot == nil {
		return next, nil, nil
	}
	slot := *due.Slot
	missed := due.Missed - 1
	s.Status.MissedSchedules = int32(missed)
	if r.Metrics != nil {
		r.Metrics.Missed.WithLabelValues(s.Namespace, s.Name).Set(float64(missed))
		if missed > 0 {
			r.Metrics.RunsSkipped.WithLabelValues("Missed").Add(float64(missed))
		}
	}
	if due.TooMany {
		r.event(s, true, v1alpha1.ReasonTooManyMissedTimes, "too many missed slots (more than %d): starting only the most recent, %s; set or lower startingDeadlineSeconds", TooManyMissed, slot.Format(time.RFC3339))
	}
	skip := func(reason, format string, args ...any) {
		s.Status.LastSkippedTime = &metav1.Time{Time: slot}
		if r.Metrics != nil {
			r.Metrics.RunsSkipped.WithLabelValues(reason).Inc()
		}
		r.event(s, reason != v1alpha1.ReasonConcurrencyForbid, reason, format, args...)
	}
	if TooLate(slot, deadline, now) {
		skip(v1alpha1.ReasonStartingDeadline, "missed the slot %s: more than startingDeadlineSeconds (%ds) ago", slot.Format(time.RFC3339), *s.Spec.StartingDeadlineSeconds)
		return next, nil, nil
	}
	var active []*run
	for _, u := range runs {
		if u.active && !u.deleting {
			active = append(active, u)
		}
	}
	name := RunName(s.Name, slot, false)
	switch policy(s) {
	case v1alpha1.ConcurrencyForbid:
		if len(active) > 0 {
			skip(v1alpha1.ReasonConcurrencyForbid, "skipped the slot %s: run %s is still active and concurrencyPolicy is Forbid", slot.Format(time.RFC3339), active[0].name)
			return next, nil, nil
		}
	case v1alpha1.ConcurrencyReplace:
		for _, u := range active {
			if u.name == name {
				continue
			}
			for _, e := range u.all() {
				if err := r.Delete(ctx, e, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
					return ctrl.Result{}, nil, err
				}
			}
			u.active, u.deleting = false, true
			u.result = v1alpha1.ScheduleRunResult{Run: u.name, Slot: metav1.Time{Time: u.slot}, Manual: u.manual, Verdict: v1alpha1.VerdictInconclusive, Message: "replaced by run " + name}
			r.finished(s, u)
			r.event(s, false, v1alpha1.ReasonReplaced, "run %s aborted (its experiments deleted, their faults recovered) for run %s", u.name, name)
		}
	}
	exp := NewExperiment(s, slot, false, firstStep(s))
	if err := r.create(ctx, exp); err != nil {
		return ctrl.Result{}, nil, err
	}
	s.Status.LastScheduleTime = &metav1.Time{Time: slot}
	if r.Metrics != nil {
		r.Metrics.RunsStarted.WithLabelValues(s.Namespace, s.Name).Inc()
	}
	r.event(s, false, v1alpha1.ReasonRunStarted, "run %s started for the slot %s (experiment %s)", name, slot.Format(time.RFC3339), exp.Name)
	u := &run{name: name, slot: slot, byStep: map[string]*v1alpha1.Experiment{}, active: true, current: exp}
	if st := firstStep(s); st != nil {
		u.step = st.Name
	}
	u.byStep[u.step] = exp
	// A run already there (a retry after a lost status write) is not
	// listed twice.
	for _, o := range runs {
		if o.name == name {
			return next, nil, nil
		}
	}
	return next, u, nil
}

func policy(s *v1alpha1.Schedule) v1alpha1.ConcurrencyPolicy {
	if s.Spec.ConcurrencyPolicy == "" {
		return v1alpha1.ConcurrencyForbid
	}
	return s.Spec.ConcurrencyPolicy
}

func firstStep(s *v1alpha1.Schedule) *v1alpha1.GamedayStep {
	if g := s.Spec.Template.Gameday; g != nil && len(g.Steps) > 0 {
		return &g.Steps[0]
	}
	return nil
}

// create creates a run's Experiment; one that exists already (the same
// slot seen twice) is success.
func (r *Reconciler) create(ctx context.Context, exp *v1alpha1.Experiment) error {
	if err := r.Create(ctx, exp); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create experiment %s: %w", exp.Name, err)
	}
	return nil
}

func (r *Reconciler) invalid(s *v1alpha1.Schedule, fieldPath, msg string) {
	reason := v1alpha1.ReasonInvalidSchedule
	if strings.HasSuffix(fieldPath, "timeZone") {
		reason = v1alpha1.ReasonInvalidTimeZone
	}
	old := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ScheduleInvalid)
	if old == nil || old.Message != msg || old.ObservedGeneration != s.Generation {
		r.event(s, true, v1alpha1.ReasonInvalid, "%s", msg)
	}
	meta.SetStatusCondition(&s.Status.Conditions, metav1.Condition{Type: v1alpha1.ScheduleInvalid, Status: metav1.ConditionTrue, Reason: reason, Message: msg, ObservedGeneration: s.Generation})
	meta.SetStatusCondition(&s.Status.Conditions, metav1.Condition{Type: v1alpha1.ScheduleReady, Status: metav1.ConditionFalse, Reason: reason, Message: msg, ObservedGeneration: s.Generation})
}

// runs reads the Schedule's runs from the Experiments it owns.
func (r *Reconciler) runs(ctx context.Context, s *v1alpha1.Schedule) ([]*run, error) {
	var list v1alpha1.ExperimentList
	if err := r.List(ctx, &list, client.InNamespace(s.Namespace), client.MatchingLabels{v1alpha1.LabelSchedule: LabelValue(s.Name)}); err != nil {
		return nil, err
	}
	byName := map[string]*run{}
	for i := range list.Items {
		e := &list.Items[i]
		if !metav1.IsControlledBy(e, s) {
			continue
		}
		name := e.Labels[v1alpha1.LabelScheduleRun]
		u := byName[name]
		if u == nil {
			u = &run{name: name, byStep: map[string]*v1alpha1.Experiment{}, manual: e.Annotations[v1alpha1.AnnotationTrigger] == "manual"}
			if t, err := time.Parse(time.RFC3339, e.Annotations[v1alpha1.AnnotationScheduledAt]); err == nil {
				u.slot = t
			} else if m, err := strconv.ParseInt(e.Labels[v1alpha1.LabelScheduleSlot], 10, 64); err == nil {
				u.slot = time.Unix(m*60, 0)
			}
			byName[name] = u
		}
		u.byStep[e.Labels[v1alpha1.LabelScheduleStep]] = e
		if !e.DeletionTimestamp.IsZero() {
			u.deleting = true
		}
	}
	out := make([]*run, 0, len(byName))
	for _, u := range byName {
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].slot.Equal(out[j].slot) {
			return out[i].slot.After(out[j].slot)
		}
		return out[i].name < out[j].name
	})
	return out, nil
}

// failed says a final Experiment did not pass.
func failed(e *v1alpha1.Experiment) bool { return e.Status.Phase != v1alpha1.PhasePassed }

// evaluate works out where a run is: active (at which step, and whether
// the next step is to be created) or finished (with its verdict).
func evaluate(u *run, s *v1alpha1.Schedule) {
	u.result = v1alpha1.ScheduleRunResult{Run: u.name, Slot: metav1.Time{Time: u.slot}, Manual: u.manual}
	g := s.Spec.Template.Gameday
	if _, single := u.byStep[""]; single || g == nil {
		e := u.byStep[""]
		if e == nil { // a gameday's steps under a template that is no longer one
			for _, x := range u.byStep {
				e = x
			}
		}
		if e == nil {
			return
		}
		if !e.Status.Phase.IsFinal() {
			if !u.deleting {
				u.active, u.current = true, e
			}
			return
		}
		u.result.Verdict, u.result.Message = runVerdict([]*v1alpha1.Experiment{e}), e.Status.Message
		return
	}
	var ended []*v1alpha1.Experiment
	stopped := ""
	for i := range g.Steps {
		st := &g.Steps[i]
		if stopped != "" {
			u.result.Steps = append(u.result.Steps, v1alpha1.StepResult{Name: st.Name, Phase: v1alpha1.StepSkipped})
			continue
		}
		e := u.byStep[st.Name]
		if e == nil {
			if !u.deleting {
				u.active, u.nextStep = true, st
			}
			return
		}
		if !e.Status.Phase.IsFinal() {
			if !u.deleting {
				u.active, u.current, u.step = true, e, st.Name
			}
			return
		}
		ended = append(ended, e)
		u.result.Steps = append(u.result.Steps, v1alpha1.StepResult{Name: st.Name, Experiment: e.Name, Phase: string(e.Status.Phase), Verdict: e.Status.Verdict})
		if failed(e) && st.OnFailure != v1alpha1.OnFailureContinue {
			stopped = st.Name
		}
	}
	u.result.Verdict = runVerdict(ended)
	if stopped != "" {
		u.result.Message = fmt.Sprintf("step %s did not pass (onFailure Stop): later steps skipped", stopped)
	} else if u.result.Verdict != v1alpha1.VerdictPassed {
		var bad []string
		for _, e := range ended {
			if failed(e) {
				bad = append(bad, e.Labels[v1alpha1.LabelScheduleStep])
			}
		}
		u.result.Message = "steps that did not pass: " + strings.Join(bad, ", ")
	}
}

// runVerdict is Passed when every step passed, Error when one ended in
// Error, else Failed.
func runVerdict(steps []*v1alpha1.Experiment) v1alpha1.Verdict {
	v := v1alpha1.VerdictPassed
	for _, e := range steps {
		switch {
		case e.Status.Phase == v1alpha1.PhaseError:
			return v1alpha1.VerdictError
		case failed(e):
			v = v1alpha1.VerdictFailed
		}
	}
	return v
}

// finished records a finished run in status.lastVerdicts once, with an
// event and the verdict metric.
func (r *Reconciler) finished(s *v1alpha1.Schedule, u *run) {
	for _, v := range s.Status.LastVerdicts {
		if v.Run == u.name {
			return
		}
	}
	if u.result.Verdict == "" {
		return
	}
	s.Status.LastVerdicts = append([]v1alpha1.ScheduleRunResult{u.result}, s.Status.LastVerdicts...)
	sort.SliceStable(s.Status.LastVerdicts, func(i, j int) bool {
		return s.Status.LastVerdicts[i].Slot.After(s.Status.LastVerdicts[j].Slot.Time)
	})
	if len(s.Status.LastVerdicts) > maxVerdicts {
		s.Status.LastVerdicts = s.Status.LastVerdicts[:maxVerdicts]
	}
	if u.result.Verdict == v1alpha1.VerdictPassed && (s.Status.LastSuccessfulTime == nil || u.slot.After(s.Status.LastSuccessfulTime.Time)) {
		s.Status.LastSuccessfulTime = &metav1.Time{Time: u.slot}
	}
	if r.Metrics != nil {
		r.Metrics.RunVerdicts.WithLabelValues(string(u.result.Verdict)).Inc()
	}
	msg := ""
	if u.result.Message != "" {
		msg = ": " + u.result.Message
	}
	r.event(s, u.result.Verdict != v1alpha1.VerdictPassed, v1alpha1.ReasonRunFinished, "run %s finished %s%s", u.name, u.result.Verdict, msg)
}

// prune deletes the oldest finished runs beyond the history limits.
func (r *Reconciler) prune(ctx context.Context, s *v1alpha1.Schedule, runs []*run) error {
	okLimit, badLimit := 3, 1
	if l := s.Spec.SuccessfulRunsHistoryLimit; l != nil {
		okLimit = int(*l)
	}
	if l := s.Spec.FailedRunsHistoryLimit; l != nil {
		badLimit = int(*l)
	}
	ok, bad := 0, 0
	for _, u := range runs { // newest first
		if u.active || u.deleting || u.result.Verdict == "" {
			continue
		}
		keep := false
		if u.result.Verdict == v1alpha1.VerdictPassed {
			ok++
			keep = ok <= okLimit
		} else {
			bad++
			keep = bad <= badLimit
		}
		if keep {
			continue
		}
		for _, e := range u.all() {
			if err := r.Delete(ctx, e, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
				return err
			}
		}
		u.deleting = true
	}
	return nil
}

func activeRefs(runs []*run) []v1alpha1.ScheduleRunRef {
	var refs []v1alpha1.ScheduleRunRef
	for _, u := range runs {
		if !u.active || u.deleting || u.current == nil {
			continue
		}
		refs = append(refs, v1alpha1.ScheduleRunRef{Run: u.name, Slot: metav1.Time{Time: u.slot}, Step: u.step, Experiment: u.current.Name, Manual: u.manual})
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].Slot.Before(&refs[j].Slot) })
	return refs
}

// NewExperiment is the Experiment of a run's step (step nil: the
// single experiment of the template): named for the slot, labelled with
// the Schedule, the run, the slot and the step, and owned by the
// Schedule. The controller and `faultline schedule trigger` both use it.
func NewExperiment(s *v1alpha1.Schedule, slot time.Time, manual bool, step *v1alpha1.GamedayStep) *v1alpha1.Experiment {
	runName := RunName(s.Name, slot, manual)
	e := &v1alpha1.Experiment{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: s.Namespace,
			Labels: map[string]string{
				v1alpha1.LabelSchedule:     LabelValue(s.Name),
				v1alpha1.LabelScheduleRun:  runName,
				v1alpha1.LabelScheduleSlot: SlotLabel(slot),
			},
			Annotations:     map[string]string{v1alpha1.AnnotationScheduledAt: slot.UTC().Format(time.RFC3339)},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(s, v1alpha1.GroupVersion.WithKind("Schedule"))},
		},
	}
	if manual {
		e.Annotations[v1alpha1.AnnotationTrigger] = "manual"
	}
	if step != nil {
		e.Name = ExperimentName(runName, step.Name)
		e.Labels[v1alpha1.LabelScheduleStep] = step.Name
		step.Experiment.DeepCopyInto(&e.Spec)
	} else {
		e.Name = ExperimentName(runName, "")
		if s.Spec.Template.Experiment != nil {
			s.Spec.Template.Experiment.DeepCopyInto(&e.Spec)
		}
	}
	return e
}

// FirstStep is a gameday's first step, nil for a single experiment.
func FirstStep(s *v1alpha1.Schedule) *v1alpha1.GamedayStep { return firstStep(s) }

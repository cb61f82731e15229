package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"faultline.dev/faultline/analyzers/measures"
	"faultline.dev/faultline/analyzers/slo"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// hold follows the faults while they run: the families that act through
// the API act, the engine reports, the analyzers measure, and an abort,
// the kill switch or a breached abort objective recovers every fault at
// once.
func (r *ExperimentReconciler) hold(ctx context.Context, exp *v1alpha1.Experiment) (ctrl.Result, error) {
	eng := r.engineFor(exp)
	if err := r.Analysis.Ensure(ctx, r.Client, exp); err != nil {
		return ctrl.Result{}, err
	}
	// Nothing new starts once the experiment is to stop: a rollout
	// triggered or a surge scaled now would act before the recovery.
	why := r.stopReason(ctx, exp)
	if why == "" {
		r.drive(ctx, exp, eng)
	}
	st, err := eng.Observe(ctx, exp)
	if err != nil {
		return ctrl.Result{}, err
	}
	r.snapshot(exp)
	if exp.Status.Phase == v1alpha1.PhaseInjecting && st.acknowledged {
		r.setPhase(exp, v1alpha1.PhaseRunning)
		meta.SetStatusCondition(&exp.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionAcknowledged, Status: metav1.ConditionTrue, Reason: st.reason, Message: st.message})
		r.note(exp, st.warning, v1alpha1.ReasonRunning, "%s", st.message)
	}
	if why != "" {
		return r.abort(ctx, exp, eng, why)
	}
	if !r.Clock.Now().Before(st.end) {
		r.setPhase(exp, v1alpha1.PhaseRecovering)
		r.note(exp, false, v1alpha1.ReasonRecovering, "every fault has reached its deadline")
	}
	return ctrl.Result{RequeueAfter: time.Second}, nil
}

// stopReason says why the experiment must stop now, or "".
func (r *ExperimentReconciler) stopReason(ctx context.Context, exp *v1alpha1.Experiment) string {
	switch {
	case exp.AbortRequested():
		return "abort requested (annotation " + v1alpha1.AnnotationAbort + ")"
	case r.killSwitchOn(ctx):
		return "the kill switch is on"
	}
	j, err := judge(exp)
	if err != nil {
		return "" // plan refused it already: it cannot be here
	}
	for _, res := range j.Evaluate(r.Analysis.Measurements(exp, r.Clock.Now()), true) {
		if res.Verdict == slo.Failed {
			return fmt.Sprintf("abort objective %q breached: %s", res.Name, res.Message)
		}
	}
	return ""
}

// drive moves every fault along for one pass: the families that act
// through the API, then the engine. What fails is shown and tried again.
func (r *ExperimentReconciler) drive(ctx context.Context, exp *v1alpha1.Experiment, eng Engine) {
	ds, _ := driversOf(exp)
	for _, d := range ds {
		r.blocked(exp, v1alpha1.ReasonFaultError, d.Drive(ctx, r, exp))
	}
	r.blocked(exp, v1alpha1.ReasonFaultError, eng.Drive(ctx, exp))
}

// follow has each family observe what its faults set going, after their
// end: a rollout that outlasts its fault is followed to its completion.
func (r *ExperimentReconciler) follow(ctx context.Context, exp *v1alpha1.Experiment) {
	ds, _ := driversOf(exp)
	for _, d := range ds {
		r.blocked(exp, v1alpha1.ReasonFaultError, d.Follow(ctx, r, exp))
	}
}

// endFaults undoes now what the faults changed through the API: at an
// abort and a deletion.
func (r *ExperimentReconciler) endFaults(ctx context.Context, exp *v1alpha1.Experiment) error {
	ds, _ := driversOf(exp)
	var errs []error
	for _, d := range ds {
		errs = append(errs, d.End(ctx, r, exp))
	}
	return errors.Join(errs...)
}

// abort recovers every fault now and goes on to the recovery.
func (r *ExperimentReconciler) abort(ctx context.Context, exp *v1alpha1.Experiment, eng Engine, why string) (ctrl.Result, error) {
	exp.Status.Message = why
	meta.SetStatusCondition(&exp.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionAborted, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonAbort, Message: why})
	r.note(exp, true, v1alpha1.ReasonAborting, "%s: recovering every fault now", why)
	if _, err := eng.Stop(ctx, exp, why); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.endFaults(ctx, exp); err != nil {
		return ctrl.Result{}, err
	}
	r.setPhase(exp, v1alpha1.PhaseRecovering)
	return ctrl.Result{RequeueAfter: time.Second}, nil
}

func (r *ExperimentReconciler) aborted(exp *v1alpha1.Experiment) bool {
	return meta.IsStatusConditionTrue(exp.Status.Conditions, v1alpha1.ConditionAborted)
}

// recovering waits for the engine to report every fault recovered, or for
// the report grace past the last deadline.
func (r *ExperimentReconciler) recovering(ctx context.Context, exp *v1alpha1.Experiment) (ctrl.Result, error) {
	if err := r.Analysis.Ensure(ctx, r.Client, exp); err != nil {
		return ctrl.Result{}, err
	}
	r.follow(ctx, exp)
	st, err := r.engineFor(exp).Finish(ctx, exp)
	if err != nil {
		return ctrl.Result{}, err
	}
	r.snapshot(exp)
	late := r.Clock.Now().After(st.end.Add(r.ReportGrace))
	if !st.recovered && !late {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	if !st.recovered {
		r.note(exp, true, v1alpha1.ReasonRecoveryUnreported, "an agent has not reported its recovery %s after the deadline; its own clock still recovers the fault", r.ReportGrace)
	}
	meta.SetStatusCondition(&exp.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionRecovered, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonAgentsReported, Message: "faults recovered"})
	if r.aborted(exp) {
		why := exp.Status.Message
		if r.judgeAll(exp) != v1alpha1.VerdictError {
			exp.Status.Verdict = v1alpha1.VerdictFailed
		}
		r.fail(exp, v1alpha1.PhaseAborted, exp.Status.Verdict, v1alpha1.ReasonAborted, "aborted: "+why+"; "+exp.Status.Message)
		// The engine releases the faults once this final status is saved
		// (the final phase's pass), so a lost write cannot lose them.
		return ctrl.Result{RequeueAfter: time.Millisecond}, nil
	}
	r.setPhase(exp, v1alpha1.PhaseAnalyzing)
	r.note(exp, false, v1alpha1.ReasonAnalyzing, "faults recovered; waiting for nodes and workloads to recover")
	return ctrl.Result{RequeueAfter: time.Second}, nil
}

// analyze waits for recovery (nodes Ready, workloads Available), then
// judges the objectives.
func (r *ExperimentReconciler) analyze(ctx context.Context, exp *v1alpha1.Experiment) (ctrl.Result, error) {
	r.follow(ctx, exp)
	st, err := r.engineFor(exp).Observe(ctx, exp)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.Analysis.Ensure(ctx, r.Client, exp); err != nil {
		return ctrl.Result{}, err
	}
	end := st.end
	if end.IsZero() {
		end = r.Clock.Now()
	}
	recovered, err := r.Analysis.Recovered(ctx, r.Client, exp, end)
	if err != nil {
		return ctrl.Result{}, err
	}
	r.snapshot(exp)
	if !recovered && r.Clock.Now().Before(end.Add(r.RecoveryTimeout)) {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	// Traffic and Prometheus measure their recovery window in full before
	// the verdict, and Prometheus measures it once it is over: a few
	// requests, bounded by the analyzer's own deadline.
	if _, recovery := exp.Spec.Windows(); recovery > 0 {
		if wait := end.Add(recovery).Sub(r.Clock.Now()); wait > 0 {
			return ctrl.Result{RequeueAfter: min(wait, time.Second)}, nil
		}
	}
	if r.Analysis.Measuring(exp) {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	r.Analysis.StopTraffic(exp)
	if !recovered {
		r.note(exp, true, v1alpha1.ReasonNotRecovered, "nodes or workloads not recovered %s after the faults ended", r.RecoveryTimeout)
	}
	v := r.judgeAll(exp)
	switch v {
	case v1alpha1.VerdictPassed:
		r.setPhase(exp, v1alpha1.PhasePassed)
	case v1alpha1.VerdictError:
		r.setPhase(exp, v1alpha1.PhaseError)
	default:
		r.setPhase(exp, v1alpha1.PhaseFailed)
	}
	r.note(exp, v != v1alpha1.VerdictPassed, string(v), "verdict %s: %s", v, exp.Status.Message)
	return ctrl.Result{RequeueAfter: time.Millisecond}, nil
}

// judgeAll evaluates every objective and sets the verdict.
func (r *ExperimentReconciler) judgeAll(exp *v1alpha1.Experiment) v1alpha1.Verdict {
	j, err := judge(exp)
	if err != nil {
		exp.Status.Verdict, exp.Status.Message = v1alpha1.VerdictError, err.Error()
		return v1alpha1.VerdictError
	}
	results := j.Evaluate(r.Analysis.Measurements(exp, r.Clock.Now()), false)
	exp.Status.Objectives = nil
	var failed []string
	for _, res := range results {
		exp.Status.Objectives = append(exp.Status.Objectives, v1alpha1.ObjectiveResult{Name: res.Name, Expr: res.Expr, Verdict: v1alpha1.Verdict(res.Verdict), Message: res.Message})
		if res.Verdict != slo.Passed {
			failed = append(failed, res.Name)
		}
	}
	v := slo.Overall(results)
	if broken := missedFaults(exp); len(broken) > 0 {
		// Objectives met without the fault prove nothing.
		exp.Status.Verdict = v1alpha1.VerdictError
		exp.Status.Message = "the faults did not all happen: " + strings.Join(broken, "; ")
		return v1alpha1.VerdictError
	}
	exp.Status.Verdict = v1alpha1.Verdict(v)
	if len(failed) == 0 {
		exp.Status.Message = fmt.Sprintf("all %d objective(s) held", len(results))
	} else {
		exp.Status.Message = fmt.Sprintf("%d of %d objective(s) not met: %s", len(failed), len(results), strings.Join(failed, ", "))
	}
	if r.Metrics != nil {
		r.Metrics.verdict(exp)
	}
	return exp.Status.Verdict
}

// missedFaults says which faults never happened: a record with an error
// or never injected, and what each family says of its own.
func missedFaults(exp *v1alpha1.Experiment) []string {
	var broken []string
	for _, rec := range exp.Status.Records {
		switch {
		case rec.Superseded != "":
			// Nothing was left to act on: not a fault that failed.
		case rec.Error != "":
			broken = append(broken, fmt.Sprintf("%s on %s: %s", rec.Fault, rec.Target, rec.Error))
		case rec.InjectedAt == nil:
			broken = append(broken, fmt.Sprintf("%s on %s was never reported injected", rec.Fault, rec.Target))
		}
	}
	ds, _ := driversOf(exp)
	for _, d := range ds {
		broken = append(broken, d.Missed(exp)...)
	}
	return broken
}

func judge(exp *v1alpha1.Experiment) (*slo.Judge, error) {
	var objs []slo.Objective
	for _, o := range exp.Spec.Objectives {
		objs = append(objs, slo.Objective{Name: o.Name, Expr: o.Expr, Abort: o.Abort})
	}
	j, err := slo.New(objs)
	if err != nil {
		return nil, err
	}
	return j, errors.Join(j.Validate(), j.Check(measures.All))
}

// finalize recovers every fault of a deleted experiment before letting it
// go: first what the families changed through the API (a surge's mark on
// the Deployment names this experiment, and nothing else would undo it),
// then the engine's faults, waited for until they are recovered or the
// report grace has passed.
func (r *ExperimentReconciler) finalize(ctx context.Context, exp *v1alpha1.Experiment) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(exp, v1alpha1.Finalizer) {
		return ctrl.Result{}, nil
	}
	if err := r.endFaults(ctx, exp); err != nil {
		return ctrl.Result{}, err
	}
	eng := r.engineFor(exp)
	st, err := eng.Stop(ctx, exp, "the experiment is being deleted")
	if err != nil {
		return ctrl.Result{}, err
	}
	if !st.recovered && !r.Clock.Now().After(st.end.Add(r.ReportGrace)) {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	if err := eng.Release(ctx, exp, "the experiment is deleted"); err != nil {
		return ctrl.Result{}, err
	}
	r.Analysis.Forget(client.ObjectKeyFromObject(exp))
	if err := r.patchFinalizer(ctx, exp, false); err != nil {
		return ctrl.Result{}, stepError(v1alpha1.ReasonFinalizerNotRemoved, fmt.Errorf("remove the finalizer %s: %w", v1alpha1.Finalizer, err))
	}
	return ctrl.Result{}, nil
}

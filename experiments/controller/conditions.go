package controller

import (
	"context"
	"errors"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// maxConditionMessage bounds what a condition repeats of an error: the
// API server's messages can quote a whole object.
const maxConditionMessage = 1024

// reasonedError is an error of a step the controller retries, with the
// reason the Ready condition and the Event give it.
type reasonedError struct {
	reason string
	err    error
}

func (e *reasonedError) Error() string { return e.err.Error() }
func (e *reasonedError) Unwrap() error { return e.err }

// stepError gives err the reason it is shown with, unless it has one.
func stepError(reason string, err error) error {
	var re *reasonedError
	if err == nil || errors.As(err, &re) {
		return err
	}
	return &reasonedError{reason: reason, err: err}
}

// patchFinalizer adds or removes faultline's finalizer with a merge patch
// of the metadata alone, under the resourceVersion read. A full update
// would send the spec back as the Go type serializes it, which need not be
// what the user applied, and the spec is immutable.
func (r *ExperimentReconciler) patchFinalizer(ctx context.Context, exp *v1alpha1.Experiment, add bool) error {
	base := exp.DeepCopy()
	if add {
		controllerutil.AddFinalizer(exp, v1alpha1.Finalizer)
	} else {
		controllerutil.RemoveFinalizer(exp, v1alpha1.Finalizer)
	}
	if err := r.Patch(ctx, exp, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		base.DeepCopyInto(exp)
		return err
	}
	return nil
}

// patchDeployment writes a surge's replicas and mark into a Deployment the
// controller does not own, as a strategic merge patch of those fields
// alone, under the resourceVersion read: the count to return to was read
// with it, and a change someone made meanwhile is a conflict to retry,
// never overwritten.
func (r *ExperimentReconciler) patchDeployment(ctx context.Context, d, base *appsv1.Deployment) error {
	return r.Patch(ctx, d, client.StrategicMergeFrom(base, client.MergeFromWithOptimisticLock{}))
}

// setReady sets the Ready condition, keeping its transition time when only
// the message changes.
func setReady(exp *v1alpha1.Experiment, status metav1.ConditionStatus, reason, msg string) {
	if len(msg) > maxConditionMessage {
		msg = msg[:maxConditionMessage-3] + "..."
	}
	meta.SetStatusCondition(&exp.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: status, Reason: reason, Message: msg, ObservedGeneration: exp.Generation,
	})
}

// shownError is a step's error already written in the Ready condition.
type shownError struct{ error }

func (e *shownError) Unwrap() error { return e.error }

// reasonOf is the reason err is shown with, fallback when it has none.
func reasonOf(err error, fallback string) string {
	var re *reasonedError
	if errors.As(err, &re) {
		return re.reason
	}
	return fallback
}

// takeReady removes the Ready condition for a step to set anew, and
// returns what it was.
func takeReady(exp *v1alpha1.Experiment) *metav1.Condition {
	prev := meta.FindStatusCondition(exp.Status.Conditions, v1alpha1.ConditionReady)
	if prev == nil {
		return nil
	}
	c := *prev
	meta.RemoveStatusCondition(&exp.Status.Conditions, v1alpha1.ConditionReady)
	return &c
}

// settleReady says what the step that just ran left the experiment in: a
// problem it met (stepErr, or a condition it set), an end in Error (kept
// as the failure set it), or else Ready: progressing, or finished with a
// verdict. The condition keeps its transition time while its status holds.
func settleReady(exp *v1alpha1.Experiment, prev *metav1.Condition, stepErr error) {
	cur := meta.FindStatusCondition(exp.Status.Conditions, v1alpha1.ConditionReady)
	switch p := exp.Status.Phase; {
	case stepErr != nil:
		setReady(exp, metav1.ConditionFalse, reasonOf(stepErr, v1alpha1.ReasonStepFailed), stepErr.Error())
	case cur != nil:
	case p == v1alpha1.PhaseError && prev != nil:
		exp.Status.Conditions = append(exp.Status.Conditions, *prev)
	case p.IsFinal():
		setReady(exp, metav1.ConditionTrue, v1alpha1.ReasonFinished, "the experiment has its verdict: "+string(exp.Status.Verdict))
	default:
		setReady(exp, metav1.ConditionTrue, v1alpha1.ReasonProgressing, "phase "+string(p))
	}
	if cur = meta.FindStatusCondition(exp.Status.Conditions, v1alpha1.ConditionReady); prev != nil && cur.Status == prev.Status {
		cur.LastTransitionTime = prev.LastTransitionTime
	}
}

// blocked shows a problem a step met and goes past (the rollout, a surge,
// a Chaos Mesh object), which it retries on the next pass: once in the
// timeline and the Events, and as Ready=False for as long as it lasts.
func (r *ExperimentReconciler) blocked(exp *v1alpha1.Experiment, fallback string, err error) {
	if err == nil {
		return
	}
	reason := reasonOf(err, fallback)
	r.noteError(exp, reason, err)
	setReady(exp, metav1.ConditionFalse, reason, err.Error())
}

// stalled shows a step the controller could not get past, which it
// retries with backoff: a warning Event with the error, and Ready=False
// with the step's reason, patched into the status on its own when the
// status written with the step did not carry it (the finalizer, the status
// itself, the end of a deleted or finished experiment).
func (r *ExperimentReconciler) stalled(ctx context.Context, exp *v1alpha1.Experiment, err error) {
	reason := reasonOf(err, v1alpha1.ReasonStepFailed)
	log.FromContext(ctx).Error(err, "experiment stalled", "reason", reason, "phase", exp.Status.Phase)
	if r.Recorder != nil {
		r.Recorder.Event(exp, corev1.EventTypeWarning, reason, err.Error())
	}
	var shown *shownError
	if errors.As(err, &shown) || (!exp.DeletionTimestamp.IsZero() && len(exp.Finalizers) == 0) {
		return
	}
	base := exp.DeepCopy()
	setReady(exp, metav1.ConditionFalse, reason, err.Error())
	if sameReady(base, exp) {
		return
	}
	if perr := r.Status().Patch(ctx, exp, client.MergeFrom(base)); perr != nil {
		log.FromContext(ctx).Error(perr, "could not show the stall in the status")
	}
}

// logChanges logs a pass's phase change, and a Ready condition that went
// False: what the status records of a problem is in the log too.
func logChanges(ctx context.Context, before, after *v1alpha1.ExperimentStatus) {
	l := log.FromContext(ctx)
	if before.Phase != after.Phase {
		l.Info("phase changed", "from", before.Phase, "to", after.Phase, "verdict", after.Verdict)
	}
	was := meta.FindStatusCondition(before.Conditions, v1alpha1.ConditionReady)
	now := meta.FindStatusCondition(after.Conditions, v1alpha1.ConditionReady)
	if now != nil && now.Status == metav1.ConditionFalse && (was == nil || was.Status != now.Status || was.Reason != now.Reason || was.Message != now.Message) {
		l.Error(errors.New(now.Message), "experiment not ready", "reason", now.Reason, "phase", after.Phase)
	}
}

// sameReady says whether two copies have the same Ready condition.
func sameReady(a, b *v1alpha1.Experiment) bool {
	ca := meta.FindStatusCondition(a.Status.Conditions, v1alpha1.ConditionReady)
	cb := meta.FindStatusCondition(b.Status.Conditions, v1alpha1.ConditionReady)
	if ca == nil || cb == nil {
		return ca == cb
	}
	return ca.Status == cb.Status && ca.Reason == cb.Reason && ca.Message == cb.Message
}

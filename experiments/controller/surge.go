package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// The Surge fault, like the Rollout fault, is the controller's own: it
// changes a Deployment through the API, and the scheduler, the quota
// admission and the Deployment controller do the rest. What it must never
// do is leave the Deployment surged: the replicas it had are written on the
// Deployment itself, in the same update that scales it, so a controller
// that restarts, or an experiment deleted mid-surge (its finalizer),
// scales it back from what the Deployment says.

// AnnotationSurge on a Deployment holds the surge in progress: which
// experiment and fault scaled it, and the replicas to return to.
const AnnotationSurge = "faultline.dev/surge"

// surgeMark is AnnotationSurge's value.
type surgeMark struct {
	Experiment types.UID `json:"experiment"`
	Fault      string    `json:"fault"`
	Replicas   int32     `json:"replicas"`
	Surge      int32     `json:"surge"`
}

func readSurgeMark(d *appsv1.Deployment) (surgeMark, bool) {
	var m surgeMark
	v, ok := d.Annotations[AnnotationSurge]
	if !ok || json.Unmarshal([]byte(v), &m) != nil {
		return surgeMark{}, false
	}
	return m, true
}

func surgeTarget(exp *v1alpha1.Experiment) string {
	return exp.Namespace + "/" + exp.Spec.Targets.Deployment
}

// surgeDriver is the Surge family: the controller scales the target
// Deployment up for the fault's duration and back, from the count its
// mark on the Deployment holds.
type surgeDriver struct{ nothingToDo }

// Plan bounds the pods each surge adds by the blast radius, and measures
// the Deployments the surge may take room from.
func (surgeDriver) Plan(ctx context.Context, r *ExperimentReconciler, exp *v1alpha1.Experiment, p *faultPlan) error {
	d := p.deployment
	replicas := ptr.Deref(d.Spec.Replicas, 1)
	s := exp.Spec.SafetyRules()
	for i, f := range exp.Spec.Faults {
		if f.Surge == nil {
			continue
		}
		// The pods a surge adds are its blast radius.
		added := f.Surge.Replicas - replicas
		if added <= 0 {
			return &SafetyError{fmt.Sprintf("spec.faults[%d].surge.replicas: %d is not above the %d replicas of Deployment %q; a surge adds pods", i, f.Surge.Replicas, replicas, d.Name)}
		}
		if s.MaxTargets != nil && added > *s.MaxTargets {
			return &SafetyError{fmt.Sprintf("spec.faults[%d].surge.replicas: %d pods added exceed spec.safety.maxTargets %d", i, added, *s.MaxTargets)}
		}
	}
	// What a surge costs shows in the others' Deployments.
	workloads, err := r.surgeWorkloads(ctx, d)
	if err != nil {
		return err
	}
	p.workloads = mergeSorted(p.workloads, workloads)
	return nil
}

// Drive starts, follows and ends the surges.
func (surgeDriver) Drive(ctx context.Context, r *ExperimentReconciler, exp *v1alpha1.Experiment) error {
	return stepError(v1alpha1.ReasonSurgeError, r.driveSurges(ctx, exp))
}

// End scales every surge back now.
func (surgeDriver) End(ctx context.Context, r *ExperimentReconciler, exp *v1alpha1.Experiment) error {
	return r.endSurges(ctx, exp)
}

// driveSurges starts the Surge faults whose time has come, reports what the
// cluster made of them, and ends those whose duration is over.
func (r *ExperimentReconciler) driveSurges(ctx context.Context, exp *v1alpha1.Experiment) error {
	var errs []error
	now := r.Clock.Now()
	// Two passes: surges that end go first, so that one starting as
	// another ends finds the Deployment unmarked.
	for _, ending := range []bool{true, false} {
		for i := range exp.Spec.Faults {
			f := &exp.Spec.Faults[i]
			if f.Type != v1alpha1.FaultSurge || f.Surge == nil {
				continue
			}
			start, end := faultWindow(exp, f)
			if start.IsZero() || now.Before(start) || ending == now.Before(end) {
				continue
			}
			rec := r.record(exp, f.Name, surgeTarget(exp))
			switch {
			case rec.RecoveredAt != nil || rec.Error != "":
			case ending:
				errs = append(errs, r.endSurge(ctx, exp, f))
			case rec.InjectedAt == nil:
				errs = append(errs, r.startSurge(ctx, exp, f, rec))
			default:
				errs = append(errs, r.surgeEffect(ctx, exp, f, rec))
			}
		}
	}
	return errors.Join(errs...)
}

// endSurges scales back every surge of the experiment now: at the end, on
// abort and on deletion. It reads the Deployment's mark, not the status,
// so that a status write lost before the crash loses nothing.
func (r *ExperimentReconciler) endSurges(ctx context.Context, exp *v1alpha1.Experiment) error {
	var errs []error
	for i := range exp.Spec.Faults {
		if f := &exp.Spec.Faults[i]; f.Type == v1alpha1.FaultSurge {
			errs = append(errs, r.endSurge(ctx, exp, f))
		}
	}
	return errors.Join(errs...)
}

func (r *ExperimentReconciler) startSurge(ctx context.Context, exp *v1alpha1.Experiment, f *v1alpha1.Fault, rec *v1alpha1.InjectionRecord) error {
	var d appsv1.Deployment
	if err := r.Reader.Get(ctx, client.ObjectKey{Namespace: exp.Namespace, Name: exp.Spec.Targets.Deployment}, &d); err != nil {
		if apierrors.IsNotFound(err) {
			rec.Error = fmt.Sprintf("Deployment %s is gone: nothing to scale", rec.Target)
			r.note(exp, true, v1alpha1.ReasonFaultError, "%s on %s: %s", f.Name, rec.Target, rec.Error)
			return nil
		}
		return fmt.Errorf("fault %s: read %s: %w", f.Name, rec.Target, err)
	}
	from := ptr.Deref(d.Spec.Replicas, 1)
	m, ok := readSurgeMark(&d)
	if ok && m.Experiment != exp.UID {
		// A mark whose experiment is gone (its finalizer removed by hand)
		// would block every later surge: its count is the one to return to.
		gone, err := r.experimentGone(ctx, d.Namespace, m.Experiment)
		if err != nil {
			return err
		}
		if gone {
			r.note(exp, true, v1alpha1.ReasonSurgeOrphan, "%s carried the surge mark of experiment %s, which is gone: taking it over, to return to its %d replicas", rec.Target, m.Experiment, m.Replicas)
			from, ok = m.Replicas, false
		}
	}
	if ok {
		if m.Experiment != exp.UID || m.Fault != f.Name {
			// Two surges of one Deployment would each restore the other's
			// count: the second is refused.
			rec.Error = fmt.Sprintf("Deployment %s is already surged by another experiment or fault (%s %s): one surge at a time", rec.Target, m.Experiment, m.Fault)
			r.note(exp, true, v1alpha1.ReasonFaultError, "%s on %s: %s", f.Name, rec.Target, rec.Error)
			return nil
		}
		from = m.Replicas // a retry after a lost status write
	} else {
		if f.Surge.Replicas <= from {
			rec.Error = fmt.Sprintf("surge.replicas: %d is not above the %d replicas %s has now; a surge adds pods", f.Surge.Replicas, from, rec.Target)
			r.note(exp, true, v1alpha1.ReasonFaultError, "%s on %s: %s", f.Name, rec.Target, rec.Error)
			return nil
		}
		mark, err := json.Marshal(surgeMark{Experiment: exp.UID, Fault: f.Name, Replicas: from, Surge: f.Surge.Replicas})
		if err != nil {
			return err
		}
		base := d.DeepCopy()
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations[AnnotationSurge] = string(mark)
		d.Spec.Replicas = ptr.To(f.Surge.Replicas)
		if err := r.patchDeployment(ctx, &d, base); err != nil {
			if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) {
				// Not a conflict to retry: the verdict must say why.
				rec.Error = fmt.Sprintf("scale %s to %d: %v", rec.Target, f.Surge.Replicas, err)
				r.note(exp, true, v1alpha1.ReasonFaultError, "%s on %s: %s", f.Name, rec.Target, rec.Error)
				return nil
			}
			return fmt.Errorf("fault %s: scale %s to %d: %w", f.Name, rec.Target, f.Surge.Replicas, err)
		}
	}
	t := r.now()
	rec.InjectedAt = &t
	rec.Action = fmt.Sprintf("scale Deployment %s from %d to %d replicas", rec.Target, from, f.Surge.Replicas)
	r.note(exp, false, v1alpha1.ReasonInjected, "%s: %s", f.Name, rec.Action)
	return nil
}

// experimentGone says whether no Experiment of namespace ns has uid.
func (r *ExperimentReconciler) experimentGone(ctx context.Context, ns string, uid types.UID) (bool, error) {
	var list v1alpha1.ExperimentList
	if err := r.Reader.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return false, err
	}
	for _, e := range list.Items {
		if e.UID == uid {
			return false, nil
		}
	}
	return true, nil
}

// surgeEffect says what the cluster made of the surge: the replicas that
// became available, and why the others did not (a quota refusing them, no
// room even after preemption).
func (r *ExperimentReconciler) surgeEffect(ctx context.Context, exp *v1alpha1.Experiment, f *v1alpha1.Fault, rec *v1alpha1.InjectionRecord) error {
	var d appsv1.Deployment
	if err := r.Get(ctx, client.ObjectKey{Namespace: exp.Namespace, Name: exp.Spec.Targets.Deployment}, &d); err != nil {
		return client.IgnoreNotFound(err)
	}
	effect := fmt.Sprintf("%d of %d replicas available, %d created", d.Status.AvailableReplicas, f.Surge.Replicas, d.Status.Replicas)
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue {
			effect += "; " + c.Reason + ": " + c.Message
		}
	}
	if pending, err := r.pendingWhy(ctx, &d); err == nil && pending != "" {
		effect += "; " + pending
	}
	if effect != rec.Effect {
		rec.Effect = effect
		r.note(exp, false, v1alpha1.ReasonFaultEffect, "%s on %s: %s", f.Name, rec.Target, effect)
	}
	return nil
}

// pendingWhy counts the Deployment's pods the scheduler has not placed,
// with the scheduler's reason for the first of them.
func (r *ExperimentReconciler) pendingWhy(ctx context.Context, d *appsv1.Deployment) (string, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() {
		return "", err
	}
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(d.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return "", err
	}
	var why []string
	for _, p := range pods.Items {
		if p.Spec.NodeName != "" || p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Message != "" {
				why = append(why, c.Message)
			}
		}
	}
	if len(why) == 0 {
		return "", nil
	}
	sort.Strings(why)
	return fmt.Sprintf("%d unscheduled (%s)", len(why), why[0]), nil
}

// endSurge scales the Deployment back to the replicas its mark holds,
// unless someone changed the count meanwhile: then theirs stands and only
// the mark goes. Done when no mark of this fault is left.
func (r *ExperimentReconciler) endSurge(ctx context.Context, exp *v1alpha1.Experiment, f *v1alpha1.Fault) error {
	rec := r.record(exp, f.Name, surgeTarget(exp))
	done := func(msg string, warning bool) {
		if rec.RecoveredAt == nil && rec.InjectedAt != nil {
			t := r.now()
			rec.RecoveredAt = &t
			r.note(exp, warning, v1alpha1.ReasonRecovered, "%s on %s: %s", f.Name, rec.Target, msg)
		}
	}
	var d appsv1.Deployment
	if err := r.Reader.Get(ctx, client.ObjectKey{Namespace: exp.Namespace, Name: exp.Spec.Targets.Deployment}, &d); err != nil {
		if apierrors.IsNotFound(err) {
			done("the Deployment is gone", true)
			return nil
		}
		return fmt.Errorf("fault %s: read %s: %w", f.Name, rec.Target, err)
	}
	m, ok := readSurgeMark(&d)
	if !ok || m.Experiment != exp.UID || m.Fault != f.Name {
		if n := ptr.Deref(d.Spec.Replicas, 1); rec.InjectedAt != nil && n == f.Surge.Replicas {
			done(fmt.Sprintf("its mark is gone and it still has the surge's %d replicas: left as it is", n), true)
			return nil
		}
		done("scaled back", false)
		return nil
	}
	base := d.DeepCopy()
	delete(d.Annotations, AnnotationSurge)
	msg := fmt.Sprintf("scaled back to %d replicas", m.Replicas)
	if now := ptr.Deref(d.Spec.Replicas, 1); now == m.Surge {
		d.Spec.Replicas = ptr.To(m.Replicas)
	} else {
		msg = fmt.Sprintf("left at %d replicas: someone changed them from the surge's %d during the fault (it had %d before)", now, m.Surge, m.Replicas)
	}
	if err := r.patchDeployment(ctx, &d, base); err != nil {
		return fmt.Errorf("fault %s: scale %s back: %w", f.Name, rec.Target, err)
	}
	if rec.InjectedAt == nil {
		// The status lost the start; the mark says it happened.
		t := r.now()
		rec.InjectedAt = &t
		rec.Action = fmt.Sprintf("scale Deployment %s from %d to %d replicas", rec.Target, m.Replicas, m.Surge)
	}
	done(msg, ptr.Deref(d.Spec.Replicas, 1) != m.Replicas)
	return nil
}

// surgeWorkloads are the Deployments a surge may take room from: those of
// the experiment's namespace, and those with pods on the nodes the surged
// pods may land on (by its nodeSelector, when it has one; a surge without
// one may land anywhere, and measuring every Deployment of the cluster is
// more than the status should hold).
func (r *ExperimentReconciler) surgeWorkloads(ctx context.Context, d *appsv1.Deployment) ([]string, error) {
	var deps appsv1.DeploymentList
	if err := r.List(ctx, &deps, client.InNamespace(d.Namespace)); err != nil {
		return nil, err
	}
	var own []string
	for _, o := range deps.Items {
		own = append(own, o.Namespace+"/"+o.Name)
	}
	sel := d.Spec.Template.Spec.NodeSelector
	if len(sel) == 0 {
		return mergeSorted(own, nil), nil
	}
	var nodes corev1.NodeList
	if err := r.List(ctx, &nodes, client.MatchingLabelsSelector{Selector: labels.SelectorFromSet(sel)}); err != nil {
		return nil, err
	}
	var ts []target
	for _, n := range nodes.Items {
		ts = append(ts, target{node: n.Name})
	}
	on, err := r.workloadsOn(ctx, ts)
	if err != nil {
		return nil, err
	}
	return mergeSorted(own, on), nil
}

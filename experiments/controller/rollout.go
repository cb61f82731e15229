package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/sampling"
)

// The Rollout fault is driven by the controller itself, since its point is
// a state of the cluster and not a time: it starts (or waits for) the
// rollout, follows it into the timeline, and at the point hands the chosen
// pods' containers to their nodes' agents (Signal) or deletes the pods
// through the API (Delete).

// annotationRestartedAt is what `kubectl rollout restart` stamps on the
// pod template; faultline uses the same key so that people recognise it.
const annotationRestartedAt = "kubectl.kubernetes.io/restartedAt"

// annotationRevision is the Deployment controller's revision of a
// ReplicaSet and of its Deployment.
const annotationRevision = "deployment.kubernetes.io/revision"

// resolveDeployment checks the Deployment target of rollout experiments:
// it exists, its namespace opted in, and the action fits the blast radius.
func (r *ExperimentReconciler) resolveDeployment(ctx context.Context, exp *v1alpha1.Experiment) (*appsv1.Deployment, error) {
	name := exp.Spec.Targets.Deployment
	if err := r.namespaceAllowed(ctx, exp, exp.Namespace, "spec.targets.deployment"); err != nil {
		return nil, err
	}
	var d appsv1.Deployment
	if err := r.Reader.Get(ctx, client.ObjectKey{Namespace: exp.Namespace, Name: name}, &d); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &SafetyError{fmt.Sprintf("spec.targets.deployment: Deployment %q not found in namespace %q; name a Deployment of the experiment's namespace", name, exp.Namespace)}
		}
		return nil, fmt.Errorf("spec.targets.deployment: %w", err)
	}
	return &d, nil
}

// rolloutDriver is the Rollout family: the controller starts the rollout
// of the target Deployment, or waits for one, and at its point the engine
// acts on the pods it chose.
type rolloutDriver struct{ nothingToDo }

// A Rollout's action waits for its point.
func (rolloutDriver) actsThroughEngine() {}

// Plan bounds the pods each action takes by the blast radius.
func (rolloutDriver) Plan(_ context.Context, _ *ExperimentReconciler, exp *v1alpha1.Experiment, p *faultPlan) error {
	replicas := ptr.Deref(p.deployment.Spec.Replicas, 1)
	s := exp.Spec.SafetyRules()
	for i, f := range exp.Spec.Faults {
		if f.Rollout == nil {
			continue
		}
		count := f.Rollout.EffectiveAction().Count
		if s.MaxTargets != nil && count > *s.MaxTargets {
			return &SafetyError{fmt.Sprintf("spec.faults[%d].rollout.action.count: %d pods exceed spec.safety.maxTargets %d", i, count, *s.MaxTargets)}
		}
		if s.MaxTargetPercent != nil && int64(count)*100 > int64(replicas)*int64(*s.MaxTargetPercent) {
			return &SafetyError{fmt.Sprintf("spec.faults[%d].rollout.action.count: %d of %d replicas exceed spec.safety.maxTargetPercent %d%%", i, count, replicas, *s.MaxTargetPercent)}
		}
		if count > replicas {
			p.notes = append(p.notes, fmt.Sprintf("fault %s: action.count %d is more than the %d replicas; at most the Ready pods of the choice are acted on", f.Name, count, replicas))
		}
	}
	return nil
}

// Drive moves every Rollout fault one step.
func (rolloutDriver) Drive(ctx context.Context, r *ExperimentReconciler, exp *v1alpha1.Experiment) error {
	return stepError(v1alpha1.ReasonRolloutError, r.driveRollouts(ctx, exp))
}

// Follow notes the progress and the completion of a rollout that outlasts
// its fault, once its point has passed: a slow rollout's end is still in
// its record and the timeline. Nothing is triggered or acted on.
func (rolloutDriver) Follow(ctx context.Context, r *ExperimentReconciler, exp *v1alpha1.Experiment) error {
	var errs []error
	for _, f := range faultsOf(exp, rolloutDriver{}) {
		rec := findRolloutRecord(exp, f.Name)
		if rec == nil || rec.PointAt == nil || rec.StartedAt == nil || rec.CompletedAt != nil {
			continue
		}
		var d appsv1.Deployment
		if err := r.Reader.Get(ctx, client.ObjectKey{Namespace: exp.Namespace, Name: exp.Spec.Targets.Deployment}, &d); err != nil {
			errs = append(errs, client.IgnoreNotFound(err))
			continue
		}
		_, end := faultWindow(exp, f)
		errs = append(errs, r.followRollout(ctx, exp, f, rec, &d, end))
	}
	return errors.Join(errs...)
}

// Missed names the rollouts whose point never came.
func (rolloutDriver) Missed(exp *v1alpha1.Experiment) []string {
	var out []string
	for i := range exp.Spec.Faults {
		f := &exp.Spec.Faults[i]
		if f.Rollout == nil {
			continue
		}
		if rec := rolloutRecord(exp, f); rec.PointAt == nil {
			out = append(out, fmt.Sprintf("%s: the point of the rollout of %s was never reached", f.Name, rec.Deployment))
		}
	}
	return out
}

// rolloutExperiments maps a Deployment, or a ReplicaSet of one, to the
// experiments in progress that target it.
func (r *ExperimentReconciler) rolloutExperiments(ctx context.Context, o client.Object) []reconcile.Request {
	name := o.GetName()
	if _, ok := o.(*appsv1.ReplicaSet); ok {
		ref := metav1.GetControllerOf(o)
		if ref == nil || ref.Kind != "Deployment" {
			return nil
		}
		name = ref.Name
	}
	var list v1alpha1.ExperimentList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, e := range list.Items {
		if e.Spec.Targets.Deployment == name && !e.Status.Phase.IsFinal() {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&e)})
		}
	}
	return out
}

// findRolloutRecord returns the fault's rollout record, or nil.
func findRolloutRecord(exp *v1alpha1.Experiment, fault string) *v1alpha1.RolloutRecord {
	for i := range exp.Status.Rollouts {
		if exp.Status.Rollouts[i].Fault == fault {
			return &exp.Status.Rollouts[i]
		}
	}
	return nil
}

// rolloutRecord returns the fault's rollout record, creating it.
func rolloutRecord(exp *v1alpha1.Experiment, f *v1alpha1.Fault) *v1alpha1.RolloutRecord {
	if rec := findRolloutRecord(exp, f.Name); rec != nil {
		return rec
	}
	exp.Status.Rollouts = append(exp.Status.Rollouts, v1alpha1.RolloutRecord{Fault: f.Name, Deployment: exp.Namespace + "/" + exp.Spec.Targets.Deployment})
	return &exp.Status.Rollouts[len(exp.Status.Rollouts)-1]
}

// faultWindow is when a fault of the spec starts and ends.
func faultWindow(exp *v1alpha1.Experiment, f *v1alpha1.Fault) (time.Time, time.Time) {
	if exp.Status.StartTime == nil {
		return time.Time{}, time.Time{}
	}
	at := exp.Status.StartTime.Time
	if f.StartAfter != nil {
		at = at.Add(f.StartAfter.Duration)
	}
	return at, at.Add(f.Duration.Duration)
}

// driveRollouts moves every Rollout fault of the experiment one step.
func (r *ExperimentReconciler) driveRollouts(ctx context.Context, exp *v1alpha1.Experiment) error {
	var errs []error
	for i := range exp.Spec.Faults {
		f := &exp.Spec.Faults[i]
		if f.Type != v1alpha1.FaultRollout || f.Rollout == nil {
			continue
		}
		errs = append(errs, r.driveRollout(ctx, exp, f))
	}
	return errors.Join(errs...)
}

func (r *ExperimentReconciler) driveRollout(ctx context.Context, exp *v1alpha1.Experiment, f *v1alpha1.Fault) error {
	start, end := faultWindow(exp, f)
	if start.IsZero() || r.Clock.Now().Before(start) {
		return nil
	}
	rec := rolloutRecord(exp, f)
	// Done: acted and the rollout ended, or no rollout came at all.
	if rec.CompletedAt != nil && (rec.PointAt != nil || rec.StartedAt == nil) {
		return nil
	}
	d, err := r.rolloutTarget(ctx, exp, f, rec, end)
	if d == nil || err != nil {
		return err
	}
	if begun, err := r.beginRollout(ctx, exp, f, rec, d, start, end); !begun || err != nil {
		return err
	}
	return r.followRollout(ctx, exp, f, rec, d, end)
}

// rolloutTarget reads the target Deployment; nil when it is gone, said
// once at the fault's end, or as an error before it.
func (r *ExperimentReconciler) rolloutTarget(ctx context.Context, exp *v1alpha1.Experiment, f *v1alpha1.Fault, rec *v1alpha1.RolloutRecord, end time.Time) (*appsv1.Deployment, error) {
	var d appsv1.Deployment
	err := r.Reader.Get(ctx, client.ObjectKey{Namespace: exp.Namespace, Name: exp.Spec.Targets.Deployment}, &d)
	switch {
	case err == nil:
		return &d, nil
	case !apierrors.IsNotFound(err) || rec.PointAt != nil:
		return nil, client.IgnoreNotFound(err)
	case !r.Clock.Now().Before(end):
		r.note(exp, true, v1alpha1.ReasonRolloutPointNotReached, "fault %s: Deployment %s is gone", f.Name, rec.Deployment)
		return nil, nil
	}
	// Said at once, not at the fault's end: the fault cannot happen
	// unless the Deployment comes back.
	return nil, stepError(v1alpha1.ReasonTargetGone, fmt.Errorf("fault %s: spec.targets.deployment: Deployment %s is gone, so its rollout cannot be driven; the verdict will be Error unless it is back before %s",
		f.Name, rec.Deployment, end.Format(time.TimeOnly)))
}

// beginRollout triggers the rollout, or takes the current generation as
// the one to leave behind and waits for a newer one. It says whether the
// rollout's generation is known.
func (r *ExperimentReconciler) beginRollout(ctx context.Context, exp *v1alpha1.Experiment, f *v1alpha1.Fault, rec *v1alpha1.RolloutRecord, d *appsv1.Deployment, start, end time.Time) (bool, error) {
	ro, now := f.Rollout, r.Clock.Now()
	if rec.Generation < 0 {
		// Written by a controller before WaitingAfterGeneration existed.
		rec.WaitingAfterGeneration, rec.Generation = -rec.Generation, 0
	}
	if rec.Generation == 0 && rec.WaitingAfterGeneration == 0 {
		if ro.Trigger != nil {
			gen, err := r.triggerRollout(ctx, d, ro.Trigger, exp)
			if err != nil {
				return false, fmt.Errorf("fault %s: trigger the rollout of %s: %w", f.Name, rec.Deployment, err)
			}
			t := metav1.NewTime(now)
			rec.TriggeredAt, rec.Generation = &t, gen
			r.note(exp, false, v1alpha1.ReasonRolloutTriggered, "fault %s: rollout of %s triggered (%s), generation %d", f.Name, rec.Deployment, triggerText(ro.Trigger), gen)
		} else {
			rec.WaitingAfterGeneration = d.Generation
			r.note(exp, false, v1alpha1.ReasonRolloutWaiting, "fault %s: waiting for a rollout of %s (now at generation %d)", f.Name, rec.Deployment, d.Generation)
		}
	}
	if rec.Generation != 0 {
		return true, nil
	}
	if d.Generation > rec.WaitingAfterGeneration {
		rec.Generation = d.Generation
		return true, nil
	}
	timeout := end
	if ro.Wait != nil && ro.Wait.Timeout != nil {
		timeout = start.Add(ro.Wait.Timeout.Duration)
	}
	if !now.Before(timeout) {
		r.note(exp, true, v1alpha1.ReasonRolloutPointNotReached, "fault %s: no rollout of %s started within %s", f.Name, rec.Deployment, timeout.Sub(start))
		t := metav1.NewTime(now)
		rec.CompletedAt = &t
	}
	return false, nil
}

// followRollout records the rollout's progress into the timeline, acts at
// its point, and notes its end.
func (r *ExperimentReconciler) followRollout(ctx context.Context, exp *v1alpha1.Experiment, f *v1alpha1.Fault, rec *v1alpha1.RolloutRecord, d *appsv1.Deployment, end time.Time) error {
	// The new ReplicaSet is the one at the Deployment's revision once the
	// Deployment controller has seen the generation.
	if d.Status.ObservedGeneration < rec.Generation {
		return nil
	}
	newRS, oldRSs, err := r.replicaSets(ctx, d)
	if err != nil || newRS == nil {
		return err
	}
	now := r.Clock.Now()
	if rec.StartedAt == nil {
		t := metav1.NewTime(now)
		rec.StartedAt, rec.NewReplicaSet = &t, newRS.Name
		rec.OldReplicaSets = nil
		for _, rs := range oldRSs {
			rec.OldReplicaSets = append(rec.OldReplicaSets, rs.Name)
		}
		r.note(exp, false, v1alpha1.ReasonRolloutStarted, "fault %s: rollout of %s started: new ReplicaSet %s, old %v", f.Name, rec.Deployment, newRS.Name, rec.OldReplicaSets)
	}
	desired := ptr.Deref(d.Spec.Replicas, 1)
	progress := fmt.Sprintf("%d/%d new Ready, %d updated, %d available, %d total", newRS.Status.ReadyReplicas, desired, d.Status.UpdatedReplicas, d.Status.AvailableReplicas, d.Status.Replicas)
	if progress != rec.Progress {
		rec.Progress = progress
		r.note(exp, false, v1alpha1.ReasonRolloutProgress, "fault %s: %s", f.Name, progress)
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" && rec.StalledAt == nil {
			t := metav1.NewTime(now)
			rec.StalledAt = &t
			r.note(exp, true, v1alpha1.ReasonRolloutStalled, "fault %s: rollout of %s stalled: %s", f.Name, rec.Deployment, c.Message)
		}
	}
	if rec.PointAt == nil {
		if pointReached(f.Rollout.At, newRS.Status.ReadyReplicas, desired, rec, now) {
			if err := r.act(ctx, exp, f, rec, newRS, oldRSs, end); err != nil {
				return err
			}
		} else if !now.Before(end) {
			// hold drives rollouts no more once the faults' end has come,
			// so this is said once.
			if rec.CompletedAt == nil {
				t := metav1.NewTime(now)
				rec.CompletedAt = &t
			}
			r.note(exp, true, v1alpha1.ReasonRolloutPointNotReached, "fault %s: the point of the rollout was not reached before the fault's end (%s)", f.Name, progress)
			return nil
		}
	}
	if rec.CompletedAt == nil && d.Status.UpdatedReplicas == desired && d.Status.AvailableReplicas == desired && d.Status.Replicas == desired {
		t := metav1.NewTime(now)
		rec.CompletedAt = &t
		r.note(exp, false, v1alpha1.ReasonRolloutComplete, "fault %s: rollout of %s complete after %.1fs", f.Name, rec.Deployment, now.Sub(rec.StartedAt.Time).Seconds())
	}
	return nil
}

// pointReached says whether the rollout is at the fault's point.
func pointReached(at v1alpha1.RolloutPoint, newReady, desired int32, rec *v1alpha1.RolloutRecord, now time.Time) bool {
	switch {
	case at.NewReady != nil:
		return newReady >= *at.NewReady
	case at.ProgressPercent != nil:
		return int64(newReady)*100 >= int64(desired)*int64(*at.ProgressPercent)
	case at.After != nil:
		return !now.Before(rec.StartedAt.Add(at.After.Duration))
	}
	return false
}

func triggerText(t *v1alpha1.RolloutTrigger) string {
	switch {
	case t.Image != nil:
		return "image " + t.Image.Image
	case t.Env != nil:
		return "env " + t.Env.Name + "=" + t.Env.Value
	}
	return "restart"
}

// containerIndex finds a container of the pod spec by name, the first when
// name is empty.
func containerIndex(spec *corev1.PodSpec, name string) (int, error) {
	if name == "" {
		if len(spec.Containers) == 0 {
			return 0, errors.New("the pod template has no containers")
		}
		return 0, nil
	}
	for i, c := range spec.Containers {
		if c.Name == name {
			return i, nil
		}
	}
	return 0, fmt.Errorf("no container %q in the pod template", name)
}

// containerID is the runtime ID of a pod's container (the first when name
// is empty), as the kubelet reports it.
func containerID(p *corev1.Pod, name string) (string, error) {
	i, err := containerIndex(&p.Spec, name)
	if err != nil {
		return "", err
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == p.Spec.Containers[i].Name && cs.ContainerID != "" {
			return cs.ContainerID, nil
		}
	}
	return "", fmt.Errorf("container %s has no ID yet (not started)", p.Spec.Containers[i].Name)
}

// triggerRollout changes the pod template and returns the Deployment's new
// generation.
func (r *ExperimentReconciler) triggerRollout(ctx context.Context, d *appsv1.Deployment, t *v1alpha1.RolloutTrigger, exp *v1alpha1.Experiment) (int64, error) {
	before := d.DeepCopy()
	tpl := &d.Spec.Template
	switch {
	case t.Restart:
		if tpl.Annotations == nil {
			tpl.Annotations = map[string]string{}
		}
		// The experiment's UID makes a retry after a lost status write a
		// no-op instead of a second rollout.
		tpl.Annotations[annotationRestartedAt] = exp.Status.StartTime.UTC().Format(time.RFC3339) + " faultline " + string(exp.UID)
	case t.Image != nil:
		i, err := containerIndex(&tpl.Spec, t.Image.Container)
		if err != nil {
			return 0, fmt.Errorf("trigger.image.container: %w", err)
		}
		tpl.Spec.Containers[i].Image = t.Image.Image
	case t.Env != nil:
		i, err := containerIndex(&tpl.Spec, t.Env.Container)
		if err != nil {
			return 0, fmt.Errorf("trigger.env.container: %w", err)
		}
		c := &tpl.Spec.Containers[i]
		found := false
		for j := range c.Env {
			if c.Env[j].Name == t.Env.Name {
				c.Env[j] = corev1.EnvVar{Name: t.Env.Name, Value: t.Env.Value}
				found = true
			}
		}
		if !found {
			c.Env = append(c.Env, corev1.EnvVar{Name: t.Env.Name, Value: t.Env.Value})
		}
	}
	// A strategic merge patch of the template's changed fields alone: the
	// Deployment is the user's, and its other fields are not ours to send.
	if err := r.Patch(ctx, d, client.StrategicMergeFrom(before)); err != nil {
		return 0, err
	}
	return d.Generation, nil
}

// replicaSets returns the Deployment's ReplicaSet at its current revision
// and the older ones that still have pods.
func (r *ExperimentReconciler) replicaSets(ctx context.Context, d *appsv1.Deployment) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, nil, err
	}
	var list appsv1.ReplicaSetList
	if err := r.Reader.List(ctx, &list, client.InNamespace(d.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, nil, err
	}
	var newRS *appsv1.ReplicaSet
	var old []*appsv1.ReplicaSet
	for i := range list.Items {
		rs := &list.Items[i]
		if !metav1.IsControlledBy(rs, d) {
			continue
		}
		if rs.Annotations[annotationRevision] == d.Annotations[annotationRevision] {
			newRS = rs
		} else if ptr.Deref(rs.Spec.Replicas, 0) > 0 || rs.Status.Replicas > 0 {
			old = append(old, rs)
		}
	}
	sort.Slice(old, func(i, j int) bool { return old[i].Name < old[j].Name })
	return newRS, old, nil
}

// act carries out the action at the point. The pods are chosen first and
// the choice is written with the status before anything is done to them:
// that write is optimistically locked, so a pass that worked from a stale
// copy of the experiment fails before it acts, and a pass whose own later
// write is lost acts again on the same pods, not on the next ones (which
// the first action may have made the only Ready ones).
func (r *ExperimentReconciler) act(ctx context.Context, exp *v1alpha1.Experiment, f *v1alpha1.Fault, rec *v1alpha1.RolloutRecord, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet, end time.Time) error {
	if rec.Chosen == nil {
		chosen, err := r.choose(ctx, exp, f, rec, newRS, oldRSs, end)
		if err != nil || chosen == nil {
			return err
		}
		rec.Chosen = chosen
		// Written from a copy: decoding the answer into exp would leave
		// rec, and the caller's pointers into the status, behind.
		written := exp.DeepCopy()
		if err := r.Status().Update(ctx, written); err != nil {
			return fmt.Errorf("fault %s: write the choice of pods: %w", f.Name, err)
		}
		exp.ResourceVersion = written.ResourceVersion
	}
	pods, err := r.chosenPods(ctx, exp, f, rec.Chosen, nil, 0, false)
	if err != nil {
		return err
	}
	a := f.Rollout.EffectiveAction()
	act := podAction{del: a.Method == "Delete", grace: a.GracePeriodSeconds, signal: a.Signal, container: a.Container,
		containerField: fmt.Sprintf("spec.faults[%s].rollout.action.container", f.Name)}
	if err := r.engineFor(exp).Act(ctx, exp, f, act, pods, end); err != nil {
		return err
	}
	t := metav1.NewTime(r.Clock.Now())
	rec.PointAt = &t
	how := "signal " + a.Signal
	if a.Method == "Delete" {
		how = "delete"
	}
	seed := ""
	if exp.Status.TargetSeed != nil {
		seed = fmt.Sprintf(", chosen at random (seed %d)", *exp.Status.TargetSeed)
	}
	r.note(exp, false, v1alpha1.ReasonRolloutPointReached, "fault %s: point reached (%s); %s %d %s pod(s)%s: %v", f.Name, rec.Progress, how, len(rec.Chosen), whichPods(a), seed, rec.Chosen)
	return nil
}

func whichPods(a v1alpha1.RolloutAction) string {
	if a.Pods == "New" {
		return "new"
	}
	return "old"
}

// choose picks the Ready pods to act on, by name, as NAMESPACE/NAME. It
// returns nil while the point waits for a Ready new pod, and an empty
// choice, with the record and the warning said, when there is nothing to
// act on.
func (r *ExperimentReconciler) choose(ctx context.Context, exp *v1alpha1.Experiment, f *v1alpha1.Fault, rec *v1alpha1.RolloutRecord, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet, end time.Time) ([]string, error) {
	a := f.Rollout.EffectiveAction()
	from := []*appsv1.ReplicaSet{newRS}
	if a.Pods != "New" {
		from = oldRSs
	}
	owners := map[string]bool{}
	for _, rs := range from {
		owners[string(rs.UID)] = true
	}
	var pods corev1.PodList
	if err := r.Reader.List(ctx, &pods, client.InNamespace(exp.Namespace)); err != nil {
		return nil, err
	}
	chosen := []string{}
	for i := range pods.Items {
		p := &pods.Items[i]
		ref := metav1.GetControllerOf(p)
		if ref == nil || !owners[string(ref.UID)] || p.DeletionTimestamp != nil || p.Spec.NodeName == "" || !podReady(p) {
			continue
		}
		chosen = append(chosen, p.Namespace+"/"+p.Name)
	}
	// At random among the Ready pods, as targets are chosen; the seed in
	// the status replays it.
	sort.Strings(chosen)
	if count := max(a.Count, 1); len(chosen) > int(count) {
		c := sampling.Choice{Mode: v1alpha1.TargetModeFixed, Value: count, Seed: r.targetSeed(exp), Salt: "rollout " + f.Name}
		idx, _, err := c.Indices(len(chosen))
		if err != nil {
			return nil, err
		}
		some := make([]string, len(idx))
		for i, j := range idx {
			some[i] = chosen[j]
		}
		chosen = some
	}
	now := r.Clock.Now()
	if len(chosen) > 0 {
		return chosen, nil
	}
	if a.Pods == "New" && now.Before(end) {
		// At a time offset the new pods may not be Ready yet: the point
		// waits for the first one (a rollout only adds new pods), until
		// the fault's end.
		if n := len(exp.Status.Timeline); n == 0 || exp.Status.Timeline[n-1].Reason != v1alpha1.ReasonRolloutPointWaiting {
			r.note(exp, false, v1alpha1.ReasonRolloutPointWaiting, "fault %s: point reached, waiting for a Ready new pod to act on (%s)", f.Name, rec.Progress)
		}
		return nil, nil
	}
	// The point is passed with nothing to act on: say so, the verdict
	// will be Error for lack of an injection.
	t := metav1.NewTime(now)
	rec.PointAt = &t
	r.note(exp, true, v1alpha1.ReasonRolloutPointReached, "fault %s: point reached but no Ready %s pod to act on (%s)", f.Name, whichPods(a), rec.Progress)
	exp.Status.Records = append(exp.Status.Records, v1alpha1.InjectionRecord{Fault: f.Name, Target: rec.Deployment, Error: "no Ready " + whichPods(a) + " pod at the point of the rollout"})
	return nil, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// chosenPods reads the pods chosen for an action (a Rollout's point, a
// PodKill's round) as they are now. One gone since the choice, or made
// anew under its name (uids, when known, tell), is left out, and its
// record says why: nothing was left to act on or, when the action is
// retried after a lost status write, an earlier pass may have acted.
func (r *ExperimentReconciler) chosenPods(ctx context.Context, exp *v1alpha1.Experiment, f *v1alpha1.Fault, chosen []string, uids []types.UID, round int32, retry bool) ([]*corev1.Pod, error) {
	var pods []*corev1.Pod
	for i, key := range chosen {
		ns, name := splitKey(key)
		var p corev1.Pod
		err := r.Reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p)
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, err
		}
		if err == nil && (i >= len(uids) || uids[i] == "" || uids[i] == p.UID) {
			pods = append(pods, &p)
			continue
		}
		rec := r.recordRound(exp, f.Name, key, round, "")
		switch {
		case rec.Action != "" || rec.Error != "":
			// Acted on by an earlier pass whose record was kept.
		case retry:
			now := metav1.NewTime(r.Clock.Now())
			rec.Action, rec.InjectedAt = "gone before this pass: killed by this round's earlier pass, whose record was lost, or by someone else", &now
		default:
			rec.Superseded = "its pod was deleted between the choice and the action: nothing was left to act on"
		}
	}
	return pods, nil
}

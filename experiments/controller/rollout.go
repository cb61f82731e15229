package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
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
func (r *ExperimentReconciler) resolveDeployment(ctx context.Context, exp *v1alpha1.Experiment) (*appsv1.Deployment, []string, error) {
	name := exp.Spec.Targets.Deployment
	if err := r.namespaceAllowed(ctx, exp, exp.Namespace, "spec.targets.deployment"); err != nil {
		return nil, nil, err
	}
	var d appsv1.Deployment
	if err := r.Reader.Get(ctx, client.ObjectKey{Namespace: exp.Namespace, Name: name}, &d); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, &SafetyError{fmt.Sprintf("spec.targets.deployment: Deployment %q not found in namespace %q; name a Deployment of the experiment's namespace", name, exp.Namespace)}
		}
		return nil, nil, fmt.Errorf("spec.targets.deployment: %w", err)
	}
	replicas := ptr.Deref(d.Spec.Replicas, 1)
	var notes []string
	s := exp.Spec.SafetyRules()
	for i, f := range exp.Spec.Faults {
		if f.Surge != nil {
			// The pods a surge adds are its blast radius.
			added := f.Surge.Replicas - replicas
			if added <= 0 {
				return nil, nil, &SafetyError{fmt.Sprintf("spec.faults[%d].surge.replicas: %d is not above the %d replicas of Deployment %q; a surge adds pods", i, f.Surge.Replicas, replicas, name)}
			}
			if s.MaxTargets != nil && added > *s.MaxTargets {
				return nil, nil, &SafetyError{fmt.Sprintf("spec.faults[%d].surge.replicas: %d pods added exceed spec.safety.maxTargets %d", i, added, *s.MaxTargets)}
			}
		}
		if f.Rollout == nil {
			continue
		}
		count := f.Rollout.EffectiveAction().Count
		if s.MaxTargets != nil && count > *s.MaxTargets {
			return nil, nil, &SafetyError{fmt.Sprintf("spec.faults[%d].rollout.action.count: %d pods exceed spec.safety.maxTargets %d", i, count, *s.MaxTargets)}
		}
		if s.MaxTargetPercent != nil && int64(count)*100 > int64(replicas)*int64(*s.MaxTargetPercent) {
			return nil, nil, &SafetyError{fmt.Sprintf("spec.faults[%d].rollout.action.count: %d of %d replicas exceed spec.safety.maxTargetPercent %d%%", i, count, replicas, *s.MaxTargetPercent)}
		}
		if count > replicas {
			notes = append(notes, fmt.Sprintf("fault %s: action.count %d is more than the %d replicas; at most the Ready pods of the choice are acted on", f.Name, count, replicas))
		}
	}
	return &d, notes, nil
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

// rolloutRecord returns the fault's rollout record, creating it.
func rolloutRecord(exp *v1alpha1.Experiment, f *v1alpha1.Fault) *v1alpha1.RolloutRecord {
	for i := range exp.Status.Rollouts {
		if exp.Status.Rollouts[i].Fault == f.Name {
			return &exp.Status.Rollouts[i]
		}
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
	now := r.Clock.Now()
	if start.IsZero() || now.Before(start) {
		return nil
	}
	rec := rolloutRecord(exp, f)
	// Done: acted and the rollout ended, or no rollout came at all.
	if rec.CompletedAt != nil && (rec.PointAt != nil || rec.StartedAt == nil) {
		return nil
	}
	var d appsv1.Deployment
	if err := r.Reader.Get(ctx, client.ObjectKey{Namespace: exp.Namespace, Name: exp.Spec.Targets.Deployment}, &d); err != nil {
		switch {
		case !apierrors.IsNotFound(err) || rec.PointAt != nil:
			return client.IgnoreNotFound(err)
		case !now.Before(end):
			r.note(exp, true, "RolloutPointNotReached", "fault %s: Deployment %s is gone", f.Name, rec.Deployment)
			return nil
		}
		// Said at once, not at the fault's end: the fault cannot happen
		// unless the Deployment comes back.
		return stepError(v1alpha1.ReasonTargetGone, fmt.Errorf("fault %s: spec.targets.deployment: Deployment %s is gone, so its rollout cannot be driven; the verdict will be Error unless it is back before %s",
			f.Name, rec.Deployment, end.Format(time.TimeOnly)))
	}
	ro := f.Rollout
	// Start: trigger it, or take the current generation as the one to
	// leave behind and wait for a newer one.
	if rec.Generation == 0 {
		if ro.Trigger != nil {
			gen, err := r.triggerRollout(ctx, &d, ro.Trigger, exp)
			if err != nil {
				return fmt.Errorf("fault %s: trigger the rollout of %s: %w", f.Name, rec.Deployment, err)
			}
			t := metav1.NewTime(now)
			rec.TriggeredAt, rec.Generation = &t, gen
			r.note(exp, false, "RolloutTriggered", "fault %s: rollout of %s triggered (%s), generation %d", f.Name, rec.Deployment, triggerText(ro.Trigger), gen)
		} else {
			rec.Generation = -d.Generation // waiting for a generation above this one
			r.note(exp, false, "RolloutWaiting", "fault %s: waiting for a rollout of %s (now at generation %d)", f.Name, rec.Deployment, d.Generation)
		}
	}
	if rec.Generation < 0 {
		if d.Generation <= -rec.Generation {
			timeout := end
			if ro.Wait != nil && ro.Wait.Timeout != nil {
				timeout = start.Add(ro.Wait.Timeout.Duration)
			}
			if !now.Before(timeout) {
				rec.Generation = -rec.Generation
				r.note(exp, true, "RolloutPointNotReached", "fault %s: no rollout of %s started within %s", f.Name, rec.Deployment, timeout.Sub(start))
				t := metav1.NewTime(now)
				rec.CompletedAt = &t
			}
			return nil
		}
		rec.Generation = d.Generation
	}
	// The new ReplicaSet is the one at the Deployment's revision once the
	// Deployment controller has seen the generation.
	if d.Status.ObservedGeneration < rec.Generation {
		return nil
	}
	newRS, oldRSs, err := r.replicaSets(ctx, &d)
	if err != nil {
		return err
	}
	if newRS == nil {
		return nil
	}
	if rec.StartedAt == nil {
		t := metav1.NewTime(now)
		rec.StartedAt, rec.NewReplicaSet = &t, newRS.Name
		rec.OldReplicaSets = nil
		for _, rs := range oldRSs {
			rec.OldReplicaSets = append(rec.OldReplicaSets, rs.Name)
		}
		r.note(exp, false, "RolloutStarted", "fault %s: rollout of %s started: new ReplicaSet %s, old %v", f.Name, rec.Deployment, newRS.Name, rec.OldReplicaSets)
	}
	desired := ptr.Deref(d.Spec.Replicas, 1)
	newReady := newRS.Status.ReadyReplicas
	progress := fmt.Sprintf("%d/%d new Ready, %d updated, %d available, %d total", newReady, desired, d.Status.UpdatedReplicas, d.Status.AvailableReplicas, d.Status.Replicas)
	if progress != rec.Progress {
		rec.Progress = progress
		r.note(exp, false, "RolloutProgress", "fault %s: %s", f.Name, progress)
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" && rec.StalledAt == nil {
			t := metav1.NewTime(now)
			rec.StalledAt = &t
			r.note(exp, true, "RolloutStalled", "fault %s: rollout of %s stalled: %s", f.Name, rec.Deployment, c.Message)
		}
	}
	if rec.PointAt == nil {
		reached := false
		switch at := ro.At; {
		case at.NewReady != nil:
			reached = newReady >= *at.NewReady
		case at.ProgressPercent != nil:
			reached = int64(newReady)*100 >= int64(desired)*int64(*at.ProgressPercent)
		case at.After != nil:
			reached = !now.Before(rec.StartedAt.Add(at.After.Duration))
		}
		if reached {
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
			r.note(exp, true, "RolloutPointNotReached", "fault %s: the point of the rollout was not reached before the fault's end (%s)", f.Name, progress)
			return nil
		}
	}
	if rec.CompletedAt == nil && d.Status.ObservedGeneration >= rec.Generation && d.Status.UpdatedReplicas == desired &&
		d.Status.AvailableReplicas == desired && d.Status.Replicas == desired {
		t := metav1.NewTime(now)
		rec.CompletedAt = &t
		r.note(exp, false, "RolloutComplete", "fault %s: rollout of %s complete after %.1fs", f.Name, rec.Deployment, now.Sub(rec.StartedAt.Time).Seconds())
	}
	return nil
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

// act carries out the action on the chosen pods at the point.
func (r *ExperimentReconciler) act(ctx context.Context, exp *v1alpha1.Experiment, f *v1alpha1.Fault, rec *v1alpha1.RolloutRecord, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet, end time.Time) error {
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
		return err
	}
	var chosen []*corev1.Pod
	for i := range pods.Items {
		p := &pods.Items[i]
		ref := metav1.GetControllerOf(p)
		if ref == nil || !owners[string(ref.UID)] || p.DeletionTimestamp != nil || p.Spec.NodeName == "" || !podReady(p) {
			continue
		}
		chosen = append(chosen, p)
	}
	sort.Slice(chosen, func(i, j int) bool { return chosen[i].Name < chosen[j].Name })
	count := int(max(a.Count, 1))
	if len(chosen) > count {
		chosen = chosen[:count]
	}
	now := r.Clock.Now()
	which := map[bool]string{true: "new", false: "old"}[a.Pods == "New"]
	if len(chosen) == 0 && a.Pods == "New" && now.Before(end) {
		// At a time offset the new pods may not be Ready yet: the point
		// waits for the first one (a rollout only adds new pods), until
		// the fault's end.
		if n := len(exp.Status.Timeline); n == 0 || exp.Status.Timeline[n-1].Reason != "RolloutPointWaiting" {
			r.note(exp, false, "RolloutPointWaiting", "fault %s: point reached, waiting for a Ready new pod to act on (%s)", f.Name, rec.Progress)
		}
		return nil
	}
	if len(chosen) == 0 {
		// The point is passed with nothing to act on: say so, the verdict
		// will be Error for lack of an injection.
		t := metav1.NewTime(now)
		rec.PointAt = &t
		r.note(exp, true, "RolloutPointReached", "fault %s: point reached but no Ready %s pod to act on (%s)", f.Name, which, rec.Progress)
		exp.Status.Records = append(exp.Status.Records, v1alpha1.InjectionRecord{Fault: f.Name, Target: rec.Deployment, Error: "no Ready " + which + " pod at the point of the rollout"})
		return nil
	}
	acting := chosen
	if usesChaosMesh(exp) {
		// One PodChaos on the chosen pods: Chaos Mesh acts, not faultline.
		if err := r.actChaosMesh(ctx, exp, f, chosen, end); err != nil {
			return err
		}
		acting = nil
	}
	for i, p := range acting {
		target := p.Namespace + "/" + p.Name
		if a.Method == "Delete" {
			opts := &client.DeleteOptions{}
			grace := "the pod's own grace period"
			if a.GracePeriodSeconds != nil {
				opts.GracePeriodSeconds = a.GracePeriodSeconds
				grace = fmt.Sprintf("grace %ds", *a.GracePeriodSeconds)
			}
			err := r.Delete(ctx, p, opts)
			rec2 := v1alpha1.InjectionRecord{Fault: f.Name, Target: target, Node: p.Spec.NodeName, Action: "delete through the API with " + grace}
			if err != nil && !apierrors.IsNotFound(err) {
				rec2.Error = err.Error()
			} else {
				t := metav1.NewTime(now)
				rec2.InjectedAt, rec2.RecoveredAt = &t, &t
			}
			exp.Status.Records = append(exp.Status.Records, rec2)
			continue
		}
		ci, err := containerIndex(&p.Spec, a.Container)
		if err != nil {
			return fmt.Errorf("spec.faults[%s].rollout.action.container: %w", f.Name, err)
		}
		cname := p.Spec.Containers[ci].Name
		cid, _ := containerID(p, cname)
		if cid == "" {
			exp.Status.Records = append(exp.Status.Records, v1alpha1.InjectionRecord{Fault: f.Name, Target: target, Node: p.Spec.NodeName, Error: "container " + cname + " has no ID yet"})
			continue
		}
		sig := a.Signal
		if sig == "" {
			sig = "SIGTERM"
		}
		af := v1alpha1.AssignedFault{
			// By position, not by pod: a retry after a lost status write
			// finds its own earlier assignment instead of a second pod.
			ID: faultID(exp, f.Name, "pod-"+strconv.Itoa(i)), Fault: f.Name, Type: v1alpha1.FaultRollout, Target: target, PodUID: p.UID,
			StartAt: metav1.NewTime(now), Deadline: metav1.NewTime(end),
			Signal: &v1alpha1.ContainerSignal{ContainerID: cid, Container: cname, Signal: sig},
		}
		placed, err := r.addAssignedFault(ctx, exp, p.Spec.NodeName, af)
		if err != nil {
			return err
		}
		exp.Status.Records = append(exp.Status.Records, v1alpha1.InjectionRecord{Fault: f.Name, Target: placed.Target, Node: p.Spec.NodeName,
			Action: fmt.Sprintf("%s to the main process of container %s (%s) through the node's agent", placed.Signal.Signal, placed.Signal.Container, placed.Signal.ContainerID)})
	}
	t := metav1.NewTime(now)
	rec.PointAt = &t
	names := make([]string, 0, len(chosen))
	for _, p := range chosen {
		names = append(names, p.Name)
	}
	how := "signal " + a.Signal
	if a.Signal == "" {
		how = "signal SIGTERM"
	}
	if a.Method == "Delete" {
		how = "delete"
	}
	r.note(exp, false, "RolloutPointReached", "fault %s: point reached (%s); %s %d %s pod(s): %v", f.Name, rec.Progress, how, len(chosen), which, names)
	return nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// addAssignedFault adds one fault of the experiment to the node's
// FaultAssignment, keeping any fault of the same ID already there (and
// returning it).
func (r *ExperimentReconciler) addAssignedFault(ctx context.Context, exp *v1alpha1.Experiment, node string, af v1alpha1.AssignedFault) (v1alpha1.AssignedFault, error) {
	var placed v1alpha1.AssignedFault
	err := r.writeAssignment(ctx, exp, node, func(mine []v1alpha1.AssignedFault) []v1alpha1.AssignedFault {
		placed = af // each retry anew
		for _, f := range mine {
			if f.ID == af.ID {
				placed = f
				return mine
			}
		}
		return append(mine, af)
	})
	return placed, err
}

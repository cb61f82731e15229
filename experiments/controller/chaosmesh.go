package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	cm "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/chaosmesh"
)

// Under spec.engine: chaos-mesh the controller writes no FaultAssignment:
// each fault is one Chaos Mesh object, created at the fault's start and
// deleted at its deadline, on abort, on deletion of the experiment and,
// for what a crash left behind, on any reconcile of a finished experiment.
// The object's own spec.duration ends the fault if faultline is gone for
// good, and its owner reference lets the garbage collector take it with
// the experiment.
//
// The controller neither watches nor caches Chaos Mesh kinds: their CRDs
// may be absent, and a watch on a kind that is not served stops the
// manager. It reads them through Reader (the API server itself) on the
// second's poll of hold.

// chaosObject is what the four kinds Object makes have in common.
type chaosObject interface {
	client.Object
	GetStatus() *cm.ChaosStatus
}

// chaosMeshEngine is spec.engine: chaos-mesh.
type chaosMeshEngine struct{ r *ExperimentReconciler }

func (e chaosMeshEngine) Available(exp *v1alpha1.Experiment) (bool, error) {
	return e.r.chaosMeshInstalled(exp)
}

// Check translates every fault once before anything starts.
func (e chaosMeshEngine) Check(ctx context.Context, exp *v1alpha1.Experiment, _ *faultPlan) error {
	return e.r.planChaosMesh(ctx, exp)
}

// Start only records the faults: each object is created at its fault's
// start (Drive).
func (e chaosMeshEngine) Start(_ context.Context, exp *v1alpha1.Experiment, _ *faultPlan) error {
	e.r.chaosRecords(exp)
	return nil
}

// Act is one PodChaos on the chosen pods: Chaos Mesh acts, not faultline.
func (e chaosMeshEngine) Act(ctx context.Context, exp *v1alpha1.Experiment, f *v1alpha1.Fault, _ podAction, pods []*corev1.Pod, end time.Time) error {
	return e.r.actChaosMesh(ctx, exp, f, pods, end)
}

func (e chaosMeshEngine) Drive(ctx context.Context, exp *v1alpha1.Experiment) error {
	return stepError(v1alpha1.ReasonChaosMeshError, e.r.driveChaosMesh(ctx, exp))
}

// Observe: every fault that has started has its object, or an error
// saying why not.
func (e chaosMeshEngine) Observe(_ context.Context, exp *v1alpha1.Experiment) (engineState, error) {
	done, failed := chaosCreated(exp, e.r.Clock.Now())
	st := engineState{acknowledged: done, reason: v1alpha1.ReasonChaosMeshObjectsCreated, message: "every fault's Chaos Mesh object is created", end: faultsEnd(exp, nil)}
	if len(failed) > 0 {
		// Running still: the faults that have their object go on, and the
		// verdict says which never happened.
		st.reason, st.message, st.warning = v1alpha1.ReasonChaosMeshObjectsFailed, "no Chaos Mesh object for "+strings.Join(failed, ", ")+" (see the records' errors); the others are created", true
	}
	return st, nil
}

// Finish deletes what is left once every deadline has passed: Chaos Mesh
// recovers before it lets an object go.
func (e chaosMeshEngine) Finish(ctx context.Context, exp *v1alpha1.Experiment) (engineState, error) {
	left, err := e.r.endChaosMesh(ctx, exp, "the faults are over")
	return engineState{recovered: left == 0, end: faultsEnd(exp, nil)}, err
}

// Stop deletes every object now; the faults end with them.
func (e chaosMeshEngine) Stop(ctx context.Context, exp *v1alpha1.Experiment, why string) (engineState, error) {
	left, err := e.r.endChaosMesh(ctx, exp, why)
	end := e.r.Clock.Now()
	if exp.DeletionTimestamp != nil {
		end = exp.DeletionTimestamp.Time
	}
	return engineState{recovered: left == 0, end: end}, err
}

func (e chaosMeshEngine) Release(ctx context.Context, exp *v1alpha1.Experiment, why string) error {
	_, err := e.r.endChaosMesh(ctx, exp, why)
	return err
}

// chaosKind is the kind chaosmesh.Object makes for a fault type.
func chaosKind(t v1alpha1.FaultType) string {
	switch t {
	case v1alpha1.FaultNetworkLoss:
		return cm.KindNetworkChaos
	case v1alpha1.FaultDiskLatency:
		return cm.KindIOChaos
	case v1alpha1.FaultMemoryPressure:
		return cm.KindStressChaos
	case v1alpha1.FaultRollout, v1alpha1.FaultPodKill:
		return cm.KindPodChaos
	}
	return ""
}

func emptyChaos(kind string) chaosObject {
	switch kind {
	case cm.KindNetworkChaos:
		return &cm.NetworkChaos{}
	case cm.KindIOChaos:
		return &cm.IOChaos{}
	case cm.KindStressChaos:
		return &cm.StressChaos{}
	case cm.KindPodChaos:
		return &cm.PodChaos{}
	}
	return nil
}

// listChaos lists the objects of one kind that carry the experiment's UID.
func (r *ExperimentReconciler) listChaos(ctx context.Context, exp *v1alpha1.Experiment, kind string) ([]chaosObject, error) {
	opts := []client.ListOption{client.InNamespace(exp.Namespace), client.MatchingLabels{v1alpha1.LabelExperiment: string(exp.UID)}}
	var out []chaosObject
	switch kind {
	case cm.KindNetworkChaos:
		var l cm.NetworkChaosList
		err := r.Reader.List(ctx, &l, opts...)
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
		return out, err
	case cm.KindIOChaos:
		var l cm.IOChaosList
		err := r.Reader.List(ctx, &l, opts...)
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
		return out, err
	case cm.KindStressChaos:
		var l cm.StressChaosList
		err := r.Reader.List(ctx, &l, opts...)
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
		return out, err
	case cm.KindPodChaos:
		var l cm.PodChaosList
		err := r.Reader.List(ctx, &l, opts...)
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
		return out, err
	}
	return nil, nil
}

// chaosTarget is the record's target: "StressChaos ns/name".
func chaosTarget(exp *v1alpha1.Experiment, f *v1alpha1.Fault) string {
	return chaosKind(f.Type) + " " + exp.Namespace + "/" + chaosmesh.Name(exp.Name, f.Name)
}

// chaosMeshInstalled fails the experiment when the API server does not
// serve Chaos Mesh's kinds: nothing could be created. Without a discovery
// client (unit tests) it assumes them served.
func (r *ExperimentReconciler) chaosMeshInstalled(exp *v1alpha1.Experiment) (bool, error) {
	if r.Discovery == nil {
		return true, nil
	}
	missing, err := chaosmesh.MissingCRDs(r.Discovery)
	if err != nil {
		return false, err
	}
	if err := chaosmesh.NotInstalled(missing); err != nil {
		r.fail(exp, v1alpha1.PhaseError, v1alpha1.VerdictError, v1alpha1.ReasonEngineUnavailable, err.Error())
		return false, nil
	}
	return true, nil
}

// planChaosMesh translates every fault once before anything starts, so
// that what Chaos Mesh cannot express is refused in plan, naming the
// field, and records one InjectionRecord per fault.
func (r *ExperimentReconciler) planChaosMesh(ctx context.Context, exp *v1alpha1.Experiment) error {
	for i := range exp.Spec.Faults {
		f := &exp.Spec.Faults[i]
		if f.Type == v1alpha1.FaultRollout {
			// faultline still triggers or waits for the rollout and picks
			// the pods at its point (trigger/at); only the action is Chaos
			// Mesh's. Its pods are not known yet: the check uses one.
			t, err := r.rolloutChaosTargets(ctx, exp, []string{"at-the-point"})
			if err != nil {
				return err
			}
			if _, err := chaosmesh.Object(exp, *f, t); err != nil {
				return err
			}
			continue
		}
		t, err := r.chaosTargets(ctx, exp, f, i)
		if err != nil {
			return err
		}
		if _, err := chaosmesh.Object(exp, *f, t); err != nil {
			return err
		}
	}
	return nil
}

// transient tells an API error worth trying again (the API server busy,
// timing out or out of reach) from one that will not change by waiting
// (a pod that is gone, a refusal, a bad spec).
func transient(err error) bool {
	if err == nil || apierrors.IsNotFound(err) || apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
		return false
	}
	var status apierrors.APIStatus
	var netErr net.Error
	return errors.As(err, &status) || errors.As(err, &netErr)
}

// chaosRecords starts the status with one record per fault.
func (r *ExperimentReconciler) chaosRecords(exp *v1alpha1.Experiment) {
	exp.Status.Records = nil
	for i := range exp.Spec.Faults {
		r.record(exp, exp.Spec.Faults[i].Name, chaosTarget(exp, &exp.Spec.Faults[i]))
	}
}

// rolloutChaosTargets are a Rollout fault's: the pods chosen at its point,
// and the Deployment (its pods' container and grace period).
func (r *ExperimentReconciler) rolloutChaosTargets(ctx context.Context, exp *v1alpha1.Experiment, pods []string) (chaosmesh.Targets, error) {
	var d appsv1.Deployment
	if err := r.Reader.Get(ctx, client.ObjectKey{Namespace: exp.Namespace, Name: exp.Spec.Targets.Deployment}, &d); err != nil {
		return chaosmesh.Targets{}, fmt.Errorf("spec.targets.deployment: %w", err)
	}
	return chaosmesh.Targets{Pods: map[string][]string{exp.Namespace: pods}, Deployment: &d}, nil
}

// actChaosMesh is a Rollout fault's action at its point, or a PodKill's
// round, under engine chaos-mesh: a PodChaos on the chosen pods, for what
// is left of the fault (Chaos Mesh kills once, at creation).
func (r *ExperimentReconciler) actChaosMesh(ctx context.Context, exp *v1alpha1.Experiment, f *v1alpha1.Fault, chosen []*corev1.Pod, end time.Time) error {
	i := slices.IndexFunc(exp.Spec.Faults, func(x v1alpha1.Fault) bool { return x.Name == f.Name })
	rec := r.record(exp, f.Name, chaosTarget(exp, f))
	if !r.Clock.Now().Before(end) {
		// A PodChaos of 0s would race its own deletion against the kill.
		return r.failChaos(exp, f, rec, "the point came after the fault's end: no PodChaos created")
	}
	names := make([]string, 0, len(chosen))
	for _, p := range chosen {
		names = append(names, p.Name)
	}
	t := chaosmesh.Targets{Pods: map[string][]string{}}
	if exp.Spec.Targets.Deployment != "" {
		var err error
		if t, err = r.rolloutChaosTargets(ctx, exp, names); err != nil {
			return err
		}
	} else {
		for _, p := range chosen {
			t.Pods[p.Namespace] = append(t.Pods[p.Namespace], p.Name)
		}
	}
	return r.createChaosFor(ctx, exp, f, i, rec, end, &t)
}

// chaosTargets rebuilds what the safety rules let through (the status's
// targets, resolved in plan) in the form chaosmesh.Object takes.
func (r *ExperimentReconciler) chaosTargets(ctx context.Context, exp *v1alpha1.Experiment, f *v1alpha1.Fault, i int) (chaosmesh.Targets, error) {
	var t chaosmesh.Targets
	if exp.Spec.Targets.Nodes != nil {
		t.Nodes = append([]string(nil), exp.Status.Targets...)
		ns, err := r.chaosNamespaces(ctx, exp, t.Nodes)
		if err != nil {
			return t, err
		}
		t.Namespaces = ns
	} else {
		t.Pods = map[string][]string{}
		for _, s := range exp.Status.Targets {
			ns, name := splitKey(s)
			t.Pods[ns] = append(t.Pods[ns], name)
		}
	}
	if f.NetworkLoss != nil && f.NetworkLoss.TowardAPIServer {
		peers, _, err := r.apiServerPeers(ctx)
		if err != nil {
			return t, fmt.Errorf("spec.faults[%d].networkLoss.towardAPIServer: %w", i, err)
		}
		t.APIServer = peers
	}
	if f.DiskLatency != nil && t.Pods != nil {
		v, err := r.volumePath(ctx, exp, f.DiskLatency, i)
		if err != nil {
			return t, err
		}
		t.VolumePath = v
	}
	return t, nil
}

// chaosNamespaces are the opted-in namespaces whose pods on the nodes a
// node fault hits: Chaos Mesh acts on pods. A namespace with a hostNetwork
// pod on those nodes is left out, as the fault would hit the node's own
// network through it.
func (r *ExperimentReconciler) chaosNamespaces(ctx context.Context, exp *v1alpha1.Experiment, nodes []string) ([]string, error) {
	var list corev1.NamespaceList
	if err := r.Reader.List(ctx, &list, client.MatchingLabels{v1alpha1.LabelChaosEnabled: "enabled"}); err != nil {
		return nil, err
	}
	var out []string
	for _, n := range list.Items {
		if (n.Name == "kube-system" || n.Name == r.Namespace) && !exp.Spec.SafetyRules().AllowSystemNamespaces {
			continue
		}
		var pods corev1.PodList
		if err := r.Reader.List(ctx, &pods, client.InNamespace(n.Name)); err != nil {
			return nil, err
		}
		host := false
		for _, p := range pods.Items {
			host = host || (p.Spec.HostNetwork && contains(nodes, p.Spec.NodeName))
		}
		if !host {
			out = append(out, n.Name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// volumePath is the mount path, in the target container of every target
// pod, of the volume that holds diskLatency.pathPrefix: the longest
// mountPath that is a prefix of it. One IOChaos takes one volume path, so
// the pods must agree.
func (r *ExperimentReconciler) volumePath(ctx context.Context, exp *v1alpha1.Experiment, d *v1alpha1.DiskLatency, i int) (string, error) {
	field := fmt.Sprintf("spec.faults[%d].diskLatency.pathPrefix", i)
	prefix := path.Clean(d.PathPrefix)
	found, from := "", ""
	for _, s := range exp.Status.Targets {
		ns, name := splitKey(s)
		var p corev1.Pod
		if err := r.Reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
			return "", fmt.Errorf("%s: pod %s: %w", field, s, err)
		}
		c, err := containerIndex(&p.Spec, d.Container)
		if err != nil {
			return "", fmt.Errorf("spec.faults[%d].diskLatency.container: pod %s: %w", i, s, err)
		}
		best := ""
		var mounts []string
		for _, m := range p.Spec.Containers[c].VolumeMounts {
			mp := path.Clean(m.MountPath)
			mounts = append(mounts, mp)
			if (mp == "/" || prefix == mp || strings.HasPrefix(prefix, mp+"/")) && len(mp) > len(best) {
				best = mp
			}
		}
		if best == "" {
			return "", fmt.Errorf("%s: %q is in no volume mounted in container %s of pod %s (mounts: %s); under engine chaos-mesh give a directory inside one of its volume mounts", field, d.PathPrefix, p.Spec.Containers[c].Name, s, strings.Join(mounts, ", "))
		}
		if found != "" && best != found {
			return "", fmt.Errorf("%s: pod %s mounts its volume at %s and pod %s at %s; one IOChaos takes one volume path, so target pods that mount it alike", field, from, found, s, best)
		}
		found, from = best, s
	}
	return found, nil
}

// driveChaosMesh creates the objects whose fault has started, follows
// what Chaos Mesh reports of them and deletes those whose deadline has
// come.
func (r *ExperimentReconciler) driveChaosMesh(ctx context.Context, exp *v1alpha1.Experiment) error {
	var errs []error
	now := r.Clock.Now()
	for i := range exp.Spec.Faults {
		f := &exp.Spec.Faults[i]
		start, end := faultWindow(exp, f)
		if start.IsZero() || now.Before(start) {
			continue
		}
		rec := r.record(exp, f.Name, chaosTarget(exp, f))
		if !now.Before(end) {
			errs = append(errs, r.deleteChaos(ctx, exp, f, rec, "the fault's deadline"))
			continue
		}
		obj := emptyChaos(chaosKind(f.Type))
		err := r.Reader.Get(ctx, client.ObjectKey{Namespace: exp.Namespace, Name: chaosmesh.Name(exp.Name, f.Name)}, obj)
		switch {
		case err == nil && obj.GetLabels()[v1alpha1.LabelExperiment] != string(exp.UID):
			// Same name, another experiment's (an earlier one of this
			// name still going): never judged, never deleted as ours.
			if rec.Action == "" && rec.Error == "" {
				_ = r.foreignChaos(exp, f, rec, obj)
			}
		case err == nil:
			if rec.Action == "" && rec.Error == "" {
				// Ours, created before a status write that was lost.
				rec.Action = "adopted " + rec.Target + ", created before a lost status write"
			}
			r.chaosEffect(exp, f, rec, obj)
		case !apierrors.IsNotFound(err) && !meta.IsNoMatchError(err):
			errs = append(errs, fmt.Errorf("fault %s: read %s: %w", f.Name, rec.Target, err))
		case rec.Error != "":
		case rec.Action == "" && actsAtAPoint(f):
			// Created at the rollout's point or the kill's round
			// (actChaosMesh).
		case rec.Action == "":
			errs = append(errs, r.createChaos(ctx, exp, f, i, rec, end))
		case rec.RecoveredAt == nil && rec.Effect != chaosGoneEarly:
			// Created, then deleted by someone else: not created again, as
			// whoever deleted it meant the fault to stop.
			rec.Effect = chaosGoneEarly
			r.note(exp, true, v1alpha1.ReasonFaultEffect, "%s on %s: %s", f.Name, rec.Target, chaosGoneEarly)
		}
	}
	return errors.Join(errs...)
}

const chaosGoneEarly = "its Chaos Mesh object was deleted before the deadline, not by faultline: not created again"

// createChaos creates the fault's object. Created late (the controller
// was down at the start), its duration is what is left of the fault,
// rounded up to the second, so that Chaos Mesh still ends it near the
// deadline. Chaos Mesh counts the duration from when it sees the object,
// which may be a little later still (the first write of a kind can take
// the API server seconds): the controller deletes it at the deadline
// whatever its duration says.
func (r *ExperimentReconciler) createChaos(ctx context.Context, exp *v1alpha1.Experiment, f *v1alpha1.Fault, i int, rec *v1alpha1.InjectionRecord, end time.Time) error {
	return r.createChaosFor(ctx, exp, f, i, rec, end, nil)
}

// createChaosFor is createChaos on given targets, or (nil) the status's.
func (r *ExperimentReconciler) createChaosFor(ctx context.Context, exp *v1alpha1.Experiment, f *v1alpha1.Fault, i int, rec *v1alpha1.InjectionRecord, end time.Time, t *chaosmesh.Targets) error {
	fail := func(msg string) error { return r.failChaos(exp, f, rec, msg) }
	now := r.Clock.Now()
	left := end.Sub(now)
	if left%time.Second != 0 {
		left = left.Truncate(time.Second) + time.Second
	}
	ff := f.DeepCopy()
	late := left < f.Duration.Duration
	if late {
		ff.Duration.Duration = left
	}
	lateBy := now.Sub(end.Add(-f.Duration.Duration)).Round(100 * time.Millisecond)
	if actsAtAPoint(f) {
		// Its point comes when the rollout gets there, not at a start.
		late = false
	}
	if t == nil {
		ct, err := r.chaosTargets(ctx, exp, f, i)
		if transient(err) {
			return fmt.Errorf("fault %s: %w", f.Name, err) // tried again on the next pass
		}
		if err != nil {
			return fail(err.Error())
		}
		t = &ct
	}
	obj, err := chaosmesh.Object(exp, *ff, *t)
	if err != nil {
		return fail(err.Error())
	}
	err = r.Create(ctx, obj)
	if apierrors.IsAlreadyExists(err) {
		existing := emptyChaos(chaosKind(f.Type))
		if gerr := r.Reader.Get(ctx, client.ObjectKeyFromObject(obj), existing); gerr != nil {
			return fmt.Errorf("fault %s: read %s: %w", f.Name, rec.Target, gerr)
		}
		if existing.GetLabels()[v1alpha1.LabelExperiment] != string(exp.UID) {
			return r.foreignChaos(exp, f, rec, existing)
		}
		err = nil
	}
	if err != nil {
		switch {
		case meta.IsNoMatchError(err):
			return fail("Chaos Mesh's CRDs are no longer installed: " + err.Error())
		case apierrors.IsForbidden(err), apierrors.IsInvalid(err):
			return fail(fmt.Sprintf("create %s: %v", rec.Target, err))
		}
		return fmt.Errorf("fault %s: create %s: %w", f.Name, rec.Target, err)
	}
	rec.Action = fmt.Sprintf("create %s with duration %s", rec.Target, ff.Duration.Duration)
	if actsAtAPoint(f) {
		var pods []string
		for ns, names := range t.Pods {
			for _, n := range names {
				pods = append(pods, ns+"/"+n)
			}
		}
		sort.Strings(pods)
		rec.Action += fmt.Sprintf(" at its point, on pods %v", pods)
	} else if late {
		rec.Action += fmt.Sprintf(" (created %s after the fault's start, shortened from %s)", lateBy, f.Duration.Duration)
	}
	r.note(exp, false, v1alpha1.ReasonChaosMeshCreated, "%s: %s", f.Name, rec.Action)
	return nil
}

// foreignChaos records that the fault's object name is taken by another
// experiment's object, which this one must neither judge nor delete.
func (r *ExperimentReconciler) foreignChaos(exp *v1alpha1.Experiment, f *v1alpha1.Fault, rec *v1alpha1.InjectionRecord, obj chaosObject) error {
	return r.failChaos(exp, f, rec, fmt.Sprintf("%s already exists and belongs to another experiment (%s=%s): delete it, or rename this experiment",
		rec.Target, v1alpha1.LabelExperiment, obj.GetLabels()[v1alpha1.LabelExperiment]))
}

// failChaos records a fault that cannot be injected; it is not retried.
func (r *ExperimentReconciler) failChaos(exp *v1alpha1.Experiment, f *v1alpha1.Fault, rec *v1alpha1.InjectionRecord, msg string) error {
	rec.Error = msg
	r.note(exp, true, v1alpha1.ReasonFaultError, "%s on %s: %s", f.Name, rec.Target, msg)
	return nil
}

// chaosEffect copies what Chaos Mesh reports of the object into the
// record: its conditions and how many of its targets it injected.
func (r *ExperimentReconciler) chaosEffect(exp *v1alpha1.Experiment, f *v1alpha1.Fault, rec *v1alpha1.InjectionRecord, obj chaosObject) {
	st := obj.GetStatus()
	cond := map[cm.ChaosConditionType]bool{}
	var on []string
	for _, c := range st.Conditions {
		if c.Status == corev1.ConditionTrue {
			cond[c.Type] = true
			on = append(on, string(c.Type))
		}
	}
	injected, recovered, unit := 0, 0, "pods"
	for _, c := range st.Experiment.Records {
		if c == nil {
			continue
		}
		if strings.Count(c.Id, "/") >= 2 {
			unit = "containers" // namespace/pod/container
		}
		if c.Phase == cm.Injected {
			injected++
		}
		if c.RecoveredCount > 0 && c.Phase == cm.NotInjected {
			recovered++
		}
	}
	total := len(st.Experiment.Records)
	effect := ""
	switch {
	case total == 0 && len(on) == 0:
		effect = "Chaos Mesh has not acted on it yet (no status)"
	case recovered > 0:
		effect = fmt.Sprintf("Chaos Mesh injected into %d of %d %s, recovered %d", injected, total, unit, recovered)
	default:
		effect = fmt.Sprintf("Chaos Mesh injected into %d of %d %s", injected, total, unit)
	}
	if len(on) > 0 {
		effect += " (" + strings.Join(on, ", ") + ")"
	}
	if effect != rec.Effect {
		rec.Effect = effect
		r.note(exp, false, v1alpha1.ReasonFaultEffect, "%s on %s: %s", f.Name, rec.Target, effect)
	}
	if rec.InjectedAt == nil && (cond[cm.ConditionAllInjected] || injected > 0) {
		t := r.now()
		rec.InjectedAt = &t
		r.note(exp, false, v1alpha1.ReasonInjected, "%s injected by Chaos Mesh (%s)", f.Name, rec.Target)
	}
	// AllRecovered also holds before the first injection: only a fault
	// once injected and told to stop is recovered.
	if rec.InjectedAt != nil && rec.RecoveredAt == nil && cond[cm.ConditionAllRecovered] && st.Experiment.DesiredPhase == cm.StoppedPhase {
		t := r.now()
		rec.RecoveredAt = &t
		r.note(exp, false, v1alpha1.ReasonRecovered, "%s recovered by Chaos Mesh (%s)", f.Name, rec.Target)
	}
}

// deleteChaos deletes one fault's object, once (Chaos Mesh's finalizer
// may keep it until it has recovered the targets). Gone, a fault once
// injected counts as recovered: Chaos Mesh recovers before it lets go.
func (r *ExperimentReconciler) deleteChaos(ctx context.Context, exp *v1alpha1.Experiment, f *v1alpha1.Fault, rec *v1alpha1.InjectionRecord, why string) error {
	obj := emptyChaos(chaosKind(f.Type))
	err := r.Reader.Get(ctx, client.ObjectKey{Namespace: exp.Namespace, Name: chaosmesh.Name(exp.Name, f.Name)}, obj)
	if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
		r.chaosGone(exp, f, rec)
		return nil
	}
	if err != nil {
		return fmt.Errorf("fault %s: read %s: %w", f.Name, rec.Target, err)
	}
	if obj.GetLabels()[v1alpha1.LabelExperiment] != string(exp.UID) {
		return nil // another experiment's of the same name: not ours to delete
	}
	r.chaosEffect(exp, f, rec, obj)
	if obj.GetDeletionTimestamp() != nil {
		return nil
	}
	if err := r.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("fault %s: delete %s: %w", f.Name, rec.Target, err)
	}
	r.note(exp, false, v1alpha1.ReasonChaosMeshDeleted, "%s: %s deleted at %s", f.Name, rec.Target, why)
	return nil
}

func (r *ExperimentReconciler) chaosGone(exp *v1alpha1.Experiment, f *v1alpha1.Fault, rec *v1alpha1.InjectionRecord) {
	if rec.InjectedAt != nil && rec.RecoveredAt == nil {
		t := r.now()
		rec.RecoveredAt = &t
		r.note(exp, false, v1alpha1.ReasonRecovered, "%s recovered: %s is gone", f.Name, rec.Target)
	}
}

// endChaosMesh deletes every Chaos Mesh object of the experiment now: on
// abort, in recovering, on deletion and for a finished experiment. It
// finds them by the experiment's UID, not by the status, so that what a
// crash left behind goes too. It says how many are still there (being
// recovered by Chaos Mesh).
func (r *ExperimentReconciler) endChaosMesh(ctx context.Context, exp *v1alpha1.Experiment, why string) (int, error) {
	left := 0
	var errs []error
	for _, gvk := range chaosmesh.Kinds() {
		objs, err := r.listChaos(ctx, exp, gvk.Kind)
		if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
			// Chaos Mesh is not installed (or its CRDs went after the
			// kind was mapped): nothing of it to delete.
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("list %s of experiment %s: %w", gvk.Kind, exp.Name, err))
			continue
		}
		for _, o := range objs {
			left++
			var f *v1alpha1.Fault
			for i := range exp.Spec.Faults {
				if exp.Spec.Faults[i].Name == o.GetLabels()[v1alpha1.LabelFault] {
					f = &exp.Spec.Faults[i]
				}
			}
			if f != nil {
				r.chaosEffect(exp, f, r.record(exp, f.Name, chaosTarget(exp, f)), o)
			}
			if o.GetDeletionTimestamp() != nil {
				continue
			}
			if err := r.Delete(ctx, o); client.IgnoreNotFound(err) != nil {
				errs = append(errs, fmt.Errorf("delete %s %s/%s: %w", gvk.Kind, o.GetNamespace(), o.GetName(), err))
				continue
			}
			r.note(exp, false, v1alpha1.ReasonChaosMeshDeleted, "%s %s/%s deleted: %s", gvk.Kind, o.GetNamespace(), o.GetName(), why)
		}
	}
	if left == 0 {
		for i := range exp.Spec.Faults {
			f := &exp.Spec.Faults[i]
			for j := range exp.Status.Records {
				if rec := &exp.Status.Records[j]; rec.Fault == f.Name && rec.Target == chaosTarget(exp, f) {
					r.chaosGone(exp, f, rec)
				}
			}
		}
	}
	return left, errors.Join(errs...)
}

// chaosCreated says whether every fault that has started has its object
// or an error saying why not (the engine's acknowledgement), and which
// faults got the error instead.
func chaosCreated(exp *v1alpha1.Experiment, now time.Time) (done bool, failed []string) {
	for i := range exp.Spec.Faults {
		f := &exp.Spec.Faults[i]
		if f.Type == v1alpha1.FaultRollout {
			continue // its object comes at the rollout's point
		}
		if start, _ := faultWindow(exp, f); start.IsZero() || now.Before(start) {
			return false, nil
		}
		created, errored := false, false
		for _, rec := range exp.Status.Records {
			if rec.Fault == f.Name {
				created = created || rec.Action != ""
				errored = errored || rec.Error != ""
			}
		}
		if !created && !errored {
			return false, nil
		}
		if !created {
			failed = append(failed, f.Name)
		}
	}
	return true, failed
}

// Package controller is faultline's Experiment controller: it plans the
// targets under the safety rules, hands each node its faults through a
// FaultAssignment, follows the agents' reports, runs the analyzers, judges
// the objectives (aborting on a live breach) and writes the verdict.
package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"faultline.dev/faultline/analyzers/slo"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// ExperimentReconciler reconciles Experiments.
type ExperimentReconciler struct {
	client.Client
	// Reader reads past the cache, for whole pods (the cache keeps only
	// what the analyzers need of them).
	Reader   client.Reader
	Recorder record.EventRecorder
	Clock    clock.Clock
	// Namespace is faultline's own; its pods are never targets by default
	// and the kill switch lives there.
	Namespace string
	// Analysis watches the cluster for the analyzers.
	Analysis *Analysis
	Metrics  *Metrics
	// RecoveryTimeout bounds the wait for workloads to come back.
	RecoveryTimeout time.Duration
	// ReportGrace is how long past a deadline an agent may take to report
	// its recovery before the controller records it as unreported.
	ReportGrace time.Duration
	// Discovery tells whether Chaos Mesh's kinds are served, for
	// spec.engine: chaos-mesh; nil assumes them served.
	Discovery discovery.DiscoveryInterface
}

// KillSwitch is the ConfigMap in faultline's namespace whose data
// "enabled": "true" stops every experiment and refuses new ones.
const KillSwitch = "faultline-kill-switch"

// SetupWithManager wires the controller: Experiments, and the nodes'
// FaultAssignments, each mapped back to every experiment with a fault in it.
func (r *ExperimentReconciler) SetupWithManager(mgr ctrl.Manager) error {
	// Its own status writes must not wake it: it polls each second while an
	// experiment runs. Spec, annotation (abort), finalizer and deletion
	// changes do.
	specChanged := predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld, e.ObjectNew
		return o.GetGeneration() != n.GetGeneration() || !equality.Semantic.DeepEqual(o.GetAnnotations(), n.GetAnnotations()) ||
			!equality.Semantic.DeepEqual(o.GetFinalizers(), n.GetFinalizers()) || !o.GetDeletionTimestamp().Equal(n.GetDeletionTimestamp())
	}}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Experiment{}, builder.WithPredicates(specChanged)).
		Watches(&v1alpha1.FaultAssignment{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			fa, ok := o.(*v1alpha1.FaultAssignment)
			if !ok {
				return nil
			}
			return experimentsOf(fa)
		})).
		// A rollout's point (say, the first new pod Ready) lasts as long as
		// the Deployment controller takes to scale the old pods down: the
		// experiments that follow a Deployment wake on its changes and its
		// ReplicaSets', not only on the second's poll.
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(r.rolloutExperiments)).
		Watches(&appsv1.ReplicaSet{}, handler.EnqueueRequestsFromMapFunc(r.rolloutExperiments)).
		Complete(r)
}

func (r *ExperimentReconciler) now() metav1.Time {
	return metav1.NewTime(r.Clock.Now().Truncate(time.Millisecond))
}

// note records a step as a Kubernetes Event and a timeline entry.
func (r *ExperimentReconciler) note(exp *v1alpha1.Experiment, warning bool, reason, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	typ := corev1.EventTypeNormal
	if warning {
		typ = corev1.EventTypeWarning
	}
	if r.Recorder != nil {
		r.Recorder.Event(exp, typ, reason, msg)
	}
	exp.Status.Timeline = append(exp.Status.Timeline, v1alpha1.TimelineEntry{Time: r.now(), Reason: reason, Message: msg})
	if n := len(exp.Status.Timeline); n > 200 {
		exp.Status.Timeline = exp.Status.Timeline[n-200:]
	}
}

// noteError notes err as a warning, once while it repeats: a step that
// fails is retried every second.
func (r *ExperimentReconciler) noteError(exp *v1alpha1.Experiment, reason string, err error) {
	if err == nil {
		return
	}
	if n := len(exp.Status.Timeline); n > 0 && exp.Status.Timeline[n-1].Message == err.Error() {
		return
	}
	r.note(exp, true, reason, "%v", err)
}

func (r *ExperimentReconciler) setPhase(exp *v1alpha1.Experiment, p v1alpha1.Phase) {
	if exp.Status.Phase != p {
		exp.Status.Phase = p
		if r.Metrics != nil {
			r.Metrics.phaseChanged(exp)
		}
	}
}

// Reconcile moves an experiment one step along its phases. A step it
// cannot get past is shown on the experiment at once: an Event with the
// API server's words, and the condition Ready=False naming the step.
func (r *ExperimentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var exp v1alpha1.Experiment
	if err := r.Get(ctx, req.NamespacedName, &exp); err != nil {
		if apierrors.IsNotFound(err) {
			r.Analysis.Forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	res, err := r.reconcile(ctx, &exp)
	if err != nil && !apierrors.IsConflict(err) {
		r.stalled(ctx, &exp, err)
	}
	return res, err
}

func (r *ExperimentReconciler) reconcile(ctx context.Context, exp *v1alpha1.Experiment) (ctrl.Result, error) {
	if !exp.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, exp)
	}
	// The finalizer goes on before anything is injected, so that deleting
	// the experiment always recovers its faults first. It goes through a
	// patch of the metadata alone: the controller never writes the spec.
	if !controllerutil.ContainsFinalizer(exp, v1alpha1.Finalizer) {
		if err := r.patchFinalizer(ctx, exp, true); err != nil {
			return ctrl.Result{}, stepError(v1alpha1.ReasonFinalizerNotSet, fmt.Errorf("add the finalizer %s: %w", v1alpha1.Finalizer, err))
		}
	}
	if exp.Status.Phase.IsFinal() {
		errs := []error{r.storeReport(ctx, exp), r.deleteAssignments(ctx, exp)}
		if usesChaosMesh(exp) {
			// Left by a controller that died before their deadline.
			_, err := r.endChaosMesh(ctx, exp, "the experiment is over ("+string(exp.Status.Phase)+")")
			errs = append(errs, err)
		}
		return ctrl.Result{}, errors.Join(errs...)
	}
	before := exp.Status.DeepCopy()
	prev := takeReady(exp)
	res, err := r.step(ctx, exp)
	exp.Status.ObservedGeneration = exp.Generation
	settleReady(exp, prev, err)
	if !equality.Semantic.DeepEqual(before, &exp.Status) {
		if uerr := r.Status().Update(ctx, exp); uerr != nil {
			if apierrors.IsConflict(uerr) {
				// Someone else wrote (an abort, a deletion): read again.
				return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
			}
			return ctrl.Result{}, stepError(v1alpha1.ReasonStatusNotWritten, fmt.Errorf("write the status: %w", uerr))
		}
	}
	if err != nil {
		// Its Ready condition went out with the status.
		return res, &shownError{err}
	}
	if exp.Status.Phase.IsFinal() {
		err = r.storeReport(ctx, exp)
	}
	return res, err
}

func (r *ExperimentReconciler) step(ctx context.Context, exp *v1alpha1.Experiment) (ctrl.Result, error) {
	switch exp.Status.Phase {
	case "", v1alpha1.PhasePending:
		return r.plan(ctx, exp)
	case v1alpha1.PhaseInjecting, v1alpha1.PhaseRunning:
		return r.hold(ctx, exp)
	case v1alpha1.PhaseRecovering:
		return r.recovering(ctx, exp)
	case v1alpha1.PhaseAnalyzing:
		return r.analyze(ctx, exp)
	}
	return ctrl.Result{}, nil
}

// killSwitchOn fails closed: when the switch cannot be read, it is on.
func (r *ExperimentReconciler) killSwitchOn(ctx context.Context) bool {
	var cm corev1.ConfigMap
	if err := r.Reader.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: KillSwitch}, &cm); err != nil {
		return !apierrors.IsNotFound(err)
	}
	return cm.Data["enabled"] == "true"
}

func (r *ExperimentReconciler) fail(exp *v1alpha1.Experiment, phase v1alpha1.Phase, verdict v1alpha1.Verdict, reason, msg string) {
	r.setPhase(exp, phase)
	exp.Status.Verdict, exp.Status.Message = verdict, msg
	r.note(exp, true, reason, "%s", msg)
	if phase == v1alpha1.PhaseError {
		setReady(exp, metav1.ConditionFalse, reason, msg)
	}
}

// plan resolves the targets and writes the FaultAssignments.
func (r *ExperimentReconciler) plan(ctx context.Context, exp *v1alpha1.Experiment) (ctrl.Result, error) {
	if exp.Status.Phase == "" {
		r.setPhase(exp, v1alpha1.PhasePending)
		r.note(exp, false, "Accepted", "experiment accepted: %d fault(s), %d objective(s)", len(exp.Spec.Faults), len(exp.Spec.Objectives))
	}
	if exp.Annotations[v1alpha1.AnnotationAbort] == "true" {
		r.fail(exp, v1alpha1.PhaseAborted, v1alpha1.VerdictFailed, "Aborted", "aborted before any fault was injected")
		return ctrl.Result{}, nil
	}
	// An invalid spec says so whatever else holds: the kill switch comes
	// second.
	if errs := exp.Validate(); len(errs) > 0 {
		r.fail(exp, v1alpha1.PhaseError, v1alpha1.VerdictError, "Invalid", errs.ToAggregate().Error())
		return ctrl.Result{}, nil
	}
	if _, err := judge(exp); err != nil {
		r.fail(exp, v1alpha1.PhaseError, v1alpha1.VerdictError, "Invalid", err.Error())
		return ctrl.Result{}, nil
	}
	if r.killSwitchOn(ctx) {
		r.fail(exp, v1alpha1.PhaseError, v1alpha1.VerdictError, "KillSwitch", fmt.Sprintf("the kill switch is on (ConfigMap %s/%s): no experiment may start", r.Namespace, KillSwitch))
		return ctrl.Result{}, nil
	}
	if usesChaosMesh(exp) {
		if ok, err := r.chaosMeshInstalled(exp); !ok {
			return ctrl.Result{}, err
		}
	}
	var targets []target
	var notes []string
	var err error
	if exp.Spec.Targets.Deployment != "" {
		var d *appsv1.Deployment
		if d, notes, err = r.resolveDeployment(ctx, exp); err == nil {
			exp.Status.Targets = []string{"Deployment " + d.Namespace + "/" + d.Name}
			exp.Status.Workloads = []string{d.Namespace + "/" + d.Name}
			if surging(exp) {
				// What a surge costs shows in the others' Deployments.
				if exp.Status.Workloads, err = r.surgeWorkloads(ctx, d); err != nil {
					return ctrl.Result{}, err
				}
			}
		}
	} else {
		targets, notes, err = r.resolveTargets(ctx, exp)
		if err == nil {
			exp.Status.Targets = nil
			for _, t := range targets {
				exp.Status.Targets = append(exp.Status.Targets, t.String())
			}
		}
	}
	var se *SafetyError
	if errors.As(err, &se) {
		r.fail(exp, v1alpha1.PhaseError, v1alpha1.VerdictError, "Refused", se.Error())
		return ctrl.Result{}, nil
	}
	if err != nil {
		r.fail(exp, v1alpha1.PhaseError, v1alpha1.VerdictError, "TargetsUnresolved", err.Error())
		return ctrl.Result{}, nil
	}
	for _, n := range notes {
		r.note(exp, true, "BlastRadius", "%s", n)
	}
	if exp.Spec.Traffic != nil {
		u, err := r.resolveServiceURL(ctx, exp.Spec.Traffic.URL)
		if err != nil {
			r.fail(exp, v1alpha1.PhaseError, v1alpha1.VerdictError, "Invalid", "spec.traffic.url: "+err.Error())
			return ctrl.Result{}, nil
		}
		exp.Status.TrafficURL = u
		cfg, _ := TrafficConfig(exp)
		if err := cfg.Validate(); err != nil {
			r.fail(exp, v1alpha1.PhaseError, v1alpha1.VerdictError, "Invalid", "spec.traffic."+err.Error())
			return ctrl.Result{}, nil
		}
	}
	if exp.Spec.Prometheus != nil {
		if err := PrometheusConfig(exp, r.Analysis.APIServer).Validate(); err != nil {
			r.fail(exp, v1alpha1.PhaseError, v1alpha1.VerdictError, "Invalid", "spec.prometheus."+strings.ReplaceAll(err.Error(), "\n", "; spec.prometheus."))
			return ctrl.Result{}, nil
		}
	}
	mem, err := r.planMemory(ctx, exp, targets)
	if err != nil {
		r.fail(exp, v1alpha1.PhaseError, v1alpha1.VerdictError, "Invalid", err.Error())
		return ctrl.Result{}, nil
	}
	named, err := r.namedWorkloads(ctx, exp)
	if err != nil {
		r.fail(exp, v1alpha1.PhaseError, v1alpha1.VerdictError, "Invalid", err.Error())
		return ctrl.Result{}, nil
	}
	if usesChaosMesh(exp) {
		if err := r.planChaosMesh(ctx, exp); transient(err) {
			return ctrl.Result{}, err // planned again on the next pass
		} else if err != nil {
			r.fail(exp, v1alpha1.PhaseError, v1alpha1.VerdictError, "Invalid", err.Error())
			return ctrl.Result{}, nil
		}
	}
	if exp.Spec.DryRun {
		r.setPhase(exp, v1alpha1.PhasePassed)
		exp.Status.Verdict = v1alpha1.VerdictInconclusive
		exp.Status.Message = fmt.Sprintf("dry run: would inject %d fault(s) into %s", len(exp.Spec.Faults), strings.Join(exp.Status.Targets, ", "))
		r.note(exp, false, "DryRun", "%s", exp.Status.Message)
		return ctrl.Result{}, nil
	}
	if len(targets) > 0 {
		workloads, err := r.workloadsOn(ctx, targets)
		if err != nil {
			return ctrl.Result{}, err
		}
		exp.Status.Workloads = workloads
	}
	exp.Status.Workloads = mergeSorted(exp.Status.Workloads, named)
	// A retry after a lost status write keeps the start (and so the
	// deadlines) that agents may already hold. Traffic measures a baseline
	// before the faults start.
	start := r.now()
	if baseline, _ := exp.Spec.Windows(); baseline > 0 {
		start = metav1.NewTime(start.Add(baseline))
	}
	if fas, err := r.assignments(ctx, exp); err == nil {
		for _, fa := range fas {
			for _, f := range fa.Spec.Faults {
				if f.StartAt.Before(&start) {
					start = f.StartAt
				}
			}
		}
	}
	exp.Status.StartTime = &start
	if usesChaosMesh(exp) {
		// The objects are created in hold, each at its fault's start.
		r.chaosRecords(exp)
	} else if err := r.writeAssignments(ctx, exp, targets, mem); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.Analysis.Ensure(ctx, r.Client, exp); err != nil {
		return ctrl.Result{}, err
	}
	r.setPhase(exp, v1alpha1.PhaseInjecting)
	if exp.Spec.Traffic != nil {
		r.note(exp, false, "TrafficStarted", "traffic at %d req/s to %s; baseline until %s", exp.Spec.Traffic.Rate, exp.Spec.Traffic.URL, start.Format(time.TimeOnly))
	}
	r.note(exp, false, "Injecting", "%d fault(s) planned on %s from %s", len(exp.Spec.Faults), strings.Join(exp.Status.Targets, ", "), start.Format(time.TimeOnly))
	return ctrl.Result{RequeueAfter: time.Second}, nil
}

func nodesOf(ts []target) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range ts {
		if !seen[t.node] {
			seen[t.node] = true
			out = append(out, t.node)
		}
	}
	sort.Strings(out)
	return out
}

// workloadsOn lists the Deployments with pods on the target nodes.
func (r *ExperimentReconciler) workloadsOn(ctx context.Context, ts []target) ([]string, error) {
	nodes := map[string]bool{}
	for _, n := range nodesOf(ts) {
		nodes[n] = true
	}
	var pods corev1.PodList
	if err := r.List(ctx, &pods); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, p := range pods.Items {
		if !nodes[p.Spec.NodeName] {
			continue
		}
		for _, o := range p.OwnerReferences {
			if o.Kind != "ReplicaSet" {
				continue
			}
			var rs appsv1.ReplicaSet
			if err := r.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: o.Name}, &rs); err != nil {
				continue
			}
			for _, ro := range rs.OwnerReferences {
				if ro.Kind == "Deployment" {
					seen[p.Namespace+"/"+ro.Name] = true
				}
			}
		}
	}
	out := make([]string, 0, len(seen))
	for w := range seen {
		out = append(out, w)
	}
	sort.Strings(out)
	return out, nil
}

// namedWorkloads checks the Deployments spec.workloads names: each must be
// in the experiment's namespace.
func (r *ExperimentReconciler) namedWorkloads(ctx context.Context, exp *v1alpha1.Experiment) ([]string, error) {
	var out []string
	for i, name := range exp.Spec.Workloads {
		var d appsv1.Deployment
		if err := r.Reader.Get(ctx, client.ObjectKey{Namespace: exp.Namespace, Name: name}, &d); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("spec.workloads[%d]: Deployment %q not found in namespace %q; name Deployments of the experiment's namespace", i, name, exp.Namespace)
			}
			return nil, fmt.Errorf("spec.workloads[%d]: %w", i, err)
		}
		out = append(out, exp.Namespace+"/"+name)
	}
	return out, nil
}

// mergeSorted is the sorted union of two lists.
func mergeSorted(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string(nil), a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// faultID names a fault on a node cluster-wide: injectors name what they
// add after it.
func faultID(exp *v1alpha1.Experiment, fault, target string) string {
	sum := sha256.Sum256([]byte(string(exp.UID) + "/" + fault + "/" + target))
	return "fl-" + hex.EncodeToString(sum[:8])
}

// apiServerPeers resolves the "toward the API server" preset to the
// addresses and port of the kubernetes Service's endpoints.
func (r *ExperimentReconciler) apiServerPeers(ctx context.Context) ([]string, []int32, error) {
	var slices discoveryv1.EndpointSliceList
	if err := r.List(ctx, &slices, client.InNamespace("default"), client.MatchingLabels{discoveryv1.LabelServiceName: "kubernetes"}); err != nil {
		return nil, nil, err
	}
	var peers []string
	var ports []int32
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			for _, a := range e.Addresses {
				if ip, err := netip.ParseAddr(a); err == nil {
					peers = append(peers, netip.PrefixFrom(ip, ip.BitLen()).String())
				}
			}
		}
		for _, p := range s.Ports {
			if p.Port != nil {
				ports = append(ports, *p.Port)
			}
		}
	}
	if len(peers) == 0 || len(ports) == 0 {
		return nil, nil, errors.New("the kubernetes Service has no endpoints: cannot resolve towardAPIServer")
	}
	return peers, ports, nil
}

func (r *ExperimentReconciler) writeAssignments(ctx context.Context, exp *v1alpha1.Experiment, ts []target, mem memoryPlan) error {
	start := exp.Status.StartTime.Time
	byNode := map[string][]v1alpha1.AssignedFault{}
	exp.Status.Records = nil
	for _, f := range exp.Spec.Faults {
		if f.Type == v1alpha1.FaultRollout {
			continue // assigned at the point of the rollout
		}
		at := start
		if f.StartAfter != nil {
			at = at.Add(f.StartAfter.Duration)
		}
		nl := f.NetworkLoss.DeepCopy()
		if nl != nil && nl.TowardAPIServer {
			peers, ports, err := r.apiServerPeers(ctx)
			if err != nil {
				return err
			}
			nl.Peers = append(nl.Peers, peers...)
			nl.Ports = append(nl.Ports, ports...)
			if nl.Protocol == "" {
				nl.Protocol = "tcp"
			}
			nl.TowardAPIServer = false
		}
		for _, t := range ts {
			af := v1alpha1.AssignedFault{
				ID: faultID(exp, f.Name, t.String()), Fault: f.Name, Type: f.Type, Target: t.String(),
				StartAt: metav1.NewTime(at), Deadline: metav1.NewTime(at.Add(f.Duration.Duration)), NetworkLoss: nl,
			}
			if t.pod != nil {
				af.PodUID = t.pod.UID
			}
			if f.DiskLatency != nil {
				af.DiskLatency = f.DiskLatency.DeepCopy()
				if t.pod != nil {
					id, err := containerID(t.pod, f.DiskLatency.Container)
					if err != nil {
						return fmt.Errorf("spec.faults[%s].diskLatency.container: pod %s: %w", f.Name, t, err)
					}
					af.ContainerID = id
				}
			}
			if a, ok := mem[memoryKey(f.Name, t)]; ok {
				af.MemoryPressure = &a
				af.Deadline = metav1.NewTime(memoryDeadline(f.MemoryPressure, a, at, f.Duration.Duration))
				if t.pod != nil {
					id, err := containerID(t.pod, f.MemoryPressure.Container)
					if err != nil {
						return fmt.Errorf("spec.faults[%s].memoryPressure.container: pod %s: %w", f.Name, t, err)
					}
					af.ContainerID = id
				}
			}
			byNode[t.node] = append(byNode[t.node], af)
			exp.Status.Records = append(exp.Status.Records, v1alpha1.InjectionRecord{Fault: f.Name, Target: t.String(), Node: t.node})
		}
	}
	for node, faults := range byNode {
		if err := r.writeAssignment(ctx, exp, node, func([]v1alpha1.AssignedFault) []v1alpha1.AssignedFault { return faults }); err != nil {
			return err
		}
	}
	return nil
}

// superseded says why a signal the agent could not deliver had nothing
// left to act on: its pod was already being deleted, or gone, as when the
// rollout itself scaled that old pod down in the instant the point was
// reached. "" when the pod is still there: then it is a real error.
func (r *ExperimentReconciler) superseded(af v1alpha1.AssignedFault) string {
	if af.Signal == nil || af.PodUID == "" {
		return ""
	}
	ns, name := splitKey(af.Target)
	var reader client.Reader = r.Client
	if r.Reader != nil {
		reader = r.Reader
	}
	var p corev1.Pod
	err := reader.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &p)
	switch {
	case apierrors.IsNotFound(err), err == nil && p.UID != af.PodUID:
		return "its pod was deleted before the signal reached it: nothing was left to signal"
	case err == nil && p.DeletionTimestamp != nil:
		return "its pod was already terminating (by the rollout, or someone else) when the signal came: nothing was left to signal"
	}
	return ""
}

// syncRecords copies the agents' reports into the records, and says
// whether every agent has acknowledged its assignment (reported on its
// current generation, which it does before injecting) and whether every
// fault is recovered.
func (r *ExperimentReconciler) syncRecords(exp *v1alpha1.Experiment, fas []v1alpha1.FaultAssignment) (allAcknowledged, allRecovered bool) {
	allAcknowledged, allRecovered = true, true
	// A fault planned for an agent but not in the assignments the cache
	// shows (it lags behind the write) is acknowledged by no one. Records
	// with an action are the controller's own (a pod deleted through the
	// API), and those with an error were never assigned.
	assigned := map[[2]string]bool{}
	for _, fa := range fas {
		for _, af := range fa.Spec.Faults {
			assigned[[2]string{af.Fault, af.Target}] = true
		}
	}
	for _, rec := range exp.Status.Records {
		if rec.Node != "" && rec.Action == "" && rec.Error == "" && !assigned[[2]string{rec.Fault, rec.Target}] {
			allAcknowledged = false
		}
	}
	status := map[string]v1alpha1.AssignedFaultStatus{}
	current := map[string]bool{}
	for _, fa := range fas {
		current[fa.Name] = fa.Status.ObservedGeneration == fa.Generation
		for _, s := range fa.Status.Faults {
			status[s.ID] = s
		}
	}
	for _, fa := range fas {
		for _, af := range fa.Spec.Faults {
			s, reported := status[af.ID]
			rec := r.record(exp, af.Fault, af.Target, fa.Spec.NodeName)
			if reported {
				if s.InjectedAt != nil && rec.InjectedAt == nil {
					rec.InjectedAt = s.InjectedAt
					r.note(exp, false, "Injected", "%s injected on %s (%s)", af.Fault, af.Target, fa.Spec.NodeName)
					if r.Metrics != nil {
						r.Metrics.InjectionLatency.Observe(s.InjectedAt.Sub(af.StartAt.Time).Seconds())
					}
				}
				if s.RecoveredAt != nil && rec.RecoveredAt == nil {
					rec.RecoveredAt = s.RecoveredAt
					r.note(exp, false, "Recovered", "%s recovered on %s (%s)", af.Fault, af.Target, fa.Spec.NodeName)
					if r.Metrics != nil && !s.RecoveredAt.Before(&af.Deadline) {
						r.Metrics.RecoveryLatency.Observe(s.RecoveredAt.Sub(af.Deadline.Time).Seconds())
					}
				}
				if s.Error != "" && rec.Error != s.Error && rec.Superseded == "" {
					if why := r.superseded(af); why != "" {
						rec.Superseded = why
						r.note(exp, true, "FaultSuperseded", "%s on %s: %s (%s)", af.Fault, af.Target, why, s.Error)
					} else {
						rec.Error = s.Error
						r.note(exp, true, "FaultError", "%s on %s: %s", af.Fault, af.Target, s.Error)
					}
				}
				// Effects change as a fault goes on (a stressor's ramp):
				// the record keeps the latest, the timeline its milestones.
				if s.Message != "" && rec.Effect != s.Message {
					rec.Effect = s.Message
					r.note(exp, false, "FaultEffect", "%s on %s: %s", af.Fault, af.Target, s.Message)
				}
			}
			// Acknowledged: the agent has reported on this generation,
			// with this fault in its report.
			if !current[fa.Name] || !reported {
				allAcknowledged = false
			}
			if !reported || s.State != v1alpha1.FaultRecovered {
				allRecovered = false
			}
		}
	}
	return allAcknowledged, allRecovered
}

func (r *ExperimentReconciler) record(exp *v1alpha1.Experiment, fault, target, node string) *v1alpha1.InjectionRecord {
	for i := range exp.Status.Records {
		if rec := &exp.Status.Records[i]; rec.Fault == fault && rec.Target == target {
			return rec
		}
	}
	exp.Status.Records = append(exp.Status.Records, v1alpha1.InjectionRecord{Fault: fault, Target: target, Node: node})
	return &exp.Status.Records[len(exp.Status.Records)-1]
}

// faultsEnd is when the last fault ends: the latest deadline of the spec
// and of the assignments (which agents hold, whatever the spec says).
func faultsEnd(exp *v1alpha1.Experiment, fas []v1alpha1.FaultAssignment) time.Time {
	var t time.Time
	for i := range exp.Spec.Faults {
		if _, end := faultWindow(exp, &exp.Spec.Faults[i]); end.After(t) {
			t = end
		}
	}
	for _, fa := range fas {
		for _, f := range fa.Spec.Faults {
			if f.Deadline.After(t) {
				t = f.Deadline.Time
			}
		}
	}
	return t
}

// hold follows the faults while they run: reports, live objectives, abort
// requests and the kill switch.
func (r *ExperimentReconciler) hold(ctx context.Context, exp *v1alpha1.Experiment) (ctrl.Result, error) {
	fas, err := r.assignments(ctx, exp)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.Analysis.Ensure(ctx, r.Client, exp); err != nil {
		return ctrl.Result{}, err
	}
	why := ""
	switch {
	case exp.Annotations[v1alpha1.AnnotationAbort] == "true":
		why = "abort requested (annotation " + v1alpha1.AnnotationAbort + ")"
	case r.killSwitchOn(ctx):
		why = "the kill switch is on"
	default:
		j, _ := judge(exp)
		for _, res := range j.Evaluate(r.Analysis.Measurements(exp, r.Clock.Now()), true) {
			if res.Verdict == slo.Failed {
				why = fmt.Sprintf("abort objective %q breached: %s", res.Name, res.Message)
				break
			}
		}
	}
	// Nothing new starts once the experiment is to stop: a rollout
	// triggered or a surge scaled now would act before the recovery.
	if why == "" {
		r.blocked(exp, "RolloutError", r.driveRollouts(ctx, exp))
		r.blocked(exp, "SurgeError", r.driveSurges(ctx, exp))
		if usesChaosMesh(exp) {
			r.blocked(exp, "ChaosMeshError", r.driveChaosMesh(ctx, exp))
		}
		// New assignments may have been written at the point.
		if fas, err = r.assignments(ctx, exp); err != nil {
			return ctrl.Result{}, err
		}
	}
	acked, _ := r.syncRecords(exp, fas)
	r.snapshot(exp)
	if usesChaosMesh(exp) {
		if done, failed := chaosCreated(exp, r.Clock.Now()); exp.Status.Phase == v1alpha1.PhaseInjecting && done {
			r.setPhase(exp, v1alpha1.PhaseRunning)
			reason, msg := "ChaosMeshObjectsCreated", "every fault's Chaos Mesh object is created"
			if len(failed) > 0 {
				// Running still: the faults that have their object go on,
				// and the verdict says which never happened.
				reason, msg = "ChaosMeshObjectsFailed", "no Chaos Mesh object for "+strings.Join(failed, ", ")+" (see the records' errors); the others are created"
			}
			meta.SetStatusCondition(&exp.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionAcknowledged, Status: metav1.ConditionTrue, Reason: reason, Message: msg})
			r.note(exp, len(failed) > 0, "Running", "%s", msg)
		}
	} else if exp.Status.Phase == v1alpha1.PhaseInjecting && acked {
		r.setPhase(exp, v1alpha1.PhaseRunning)
		meta.SetStatusCondition(&exp.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionAcknowledged, Status: metav1.ConditionTrue, Reason: "AgentsAcknowledged", Message: "every agent has acknowledged its faults"})
		r.note(exp, false, "Running", "every agent has acknowledged its faults (observedGeneration)")
	}
	if why != "" {
		exp.Status.Message = why
		meta.SetStatusCondition(&exp.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionAborted, Status: metav1.ConditionTrue, Reason: "Abort", Message: why})
		r.note(exp, true, "Aborting", "%s: recovering every fault now", why)
		if err := r.recoverAll(ctx, exp, fas); err != nil {
			return ctrl.Result{}, err
		}
		if err := r.endSurges(ctx, exp); err != nil {
			return ctrl.Result{}, err
		}
		if usesChaosMesh(exp) {
			if _, err := r.endChaosMesh(ctx, exp, why); err != nil {
				return ctrl.Result{}, err
			}
		}
		r.setPhase(exp, v1alpha1.PhaseRecovering)
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	if !r.Clock.Now().Before(faultsEnd(exp, fas)) {
		r.setPhase(exp, v1alpha1.PhaseRecovering)
		r.note(exp, false, "Recovering", "every fault has reached its deadline")
	}
	return ctrl.Result{RequeueAfter: time.Second}, nil
}

func (r *ExperimentReconciler) aborted(exp *v1alpha1.Experiment) bool {
	return meta.IsStatusConditionTrue(exp.Status.Conditions, v1alpha1.ConditionAborted)
}

// recovering waits for the agents to report every fault recovered.
func (r *ExperimentReconciler) recovering(ctx context.Context, exp *v1alpha1.Experiment) (ctrl.Result, error) {
	fas, err := r.assignments(ctx, exp)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.Analysis.Ensure(ctx, r.Client, exp); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.endSurges(ctx, exp); err != nil {
		return ctrl.Result{}, err
	}
	_, allRecovered := r.syncRecords(exp, fas)
	if usesChaosMesh(exp) {
		// Every deadline has passed, or the experiment is aborted: what
		// is left goes, and Chaos Mesh recovers before it lets go.
		left, err := r.endChaosMesh(ctx, exp, "the faults are over")
		if err != nil {
			return ctrl.Result{}, err
		}
		allRecovered = left == 0
	}
	r.snapshot(exp)
	late := r.Clock.Now().After(faultsEnd(exp, fas).Add(r.ReportGrace))
	if !allRecovered && !late {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	if !allRecovered {
		r.note(exp, true, "RecoveryUnreported", "an agent has not reported its recovery %s after the deadline; its own clock still recovers the fault", r.ReportGrace)
	}
	meta.SetStatusCondition(&exp.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionRecovered, Status: metav1.ConditionTrue, Reason: "AgentsReported", Message: "faults recovered"})
	if r.aborted(exp) {
		why := exp.Status.Message
		if r.judgeAll(exp) != v1alpha1.VerdictError {
			exp.Status.Verdict = v1alpha1.VerdictFailed
		}
		r.fail(exp, v1alpha1.PhaseAborted, exp.Status.Verdict, "Aborted", "aborted: "+why+"; "+exp.Status.Message)
		// The FaultAssignments go once this final status is saved (the
		// IsFinal branch), so a lost write cannot lose the deadlines.
		return ctrl.Result{Requeue: true}, nil
	}
	r.setPhase(exp, v1alpha1.PhaseAnalyzing)
	r.note(exp, false, "Analyzing", "faults recovered; waiting for nodes and workloads to recover")
	return ctrl.Result{RequeueAfter: time.Second}, nil
}

// analyze waits for recovery (nodes Ready, workloads Available), then
// judges the objectives.
func (r *ExperimentReconciler) analyze(ctx context.Context, exp *v1alpha1.Experiment) (ctrl.Result, error) {
	fas, err := r.assignments(ctx, exp)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.Analysis.Ensure(ctx, r.Client, exp); err != nil {
		return ctrl.Result{}, err
	}
	end := faultsEnd(exp, fas)
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
	// the verdict.
	if _, recovery := exp.Spec.Windows(); recovery > 0 {
		if wait := end.Add(recovery).Sub(r.Clock.Now()); wait > 0 {
			return ctrl.Result{RequeueAfter: min(wait, time.Second)}, nil
		}
	}
	// Prometheus measures the recovery window once it is over: a few
	// requests, bounded by the analyzer's own deadline.
	if r.Analysis.Measuring(exp) {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	r.Analysis.StopTraffic(exp)
	if !recovered {
		r.note(exp, true, "NotRecovered", "nodes or workloads not recovered %s after the faults ended", r.RecoveryTimeout)
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
	return ctrl.Result{Requeue: true}, nil
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
	v := v1alpha1.Verdict(slo.Overall(results))
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
	for i := range exp.Spec.Faults {
		f := &exp.Spec.Faults[i]
		if f.Type != v1alpha1.FaultRollout {
			continue
		}
		if rec := rolloutRecord(exp, f); rec.PointAt == nil {
			broken = append(broken, fmt.Sprintf("%s: the point of the rollout of %s was never reached", f.Name, rec.Deployment))
		}
	}
	if len(broken) > 0 {
		// Objectives met without the fault prove nothing.
		exp.Status.Verdict = v1alpha1.VerdictError
		exp.Status.Message = "the faults did not all happen: " + strings.Join(broken, "; ")
		return v1alpha1.VerdictError
	}
	exp.Status.Verdict = v
	if len(failed) == 0 {
		exp.Status.Message = fmt.Sprintf("all %d objective(s) held", len(results))
	} else {
		exp.Status.Message = fmt.Sprintf("%d of %d objective(s) not met: %s", len(failed), len(results), strings.Join(failed, ", "))
	}
	if r.Metrics != nil {
		r.Metrics.verdict(exp)
	}
	return v
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
	return j, j.Validate()
}

// finalize recovers every fault of a deleted experiment before letting it go.
func (r *ExperimentReconciler) finalize(ctx context.Context, exp *v1alpha1.Experiment) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(exp, v1alpha1.Finalizer) {
		return ctrl.Result{}, nil
	}
	// A surge is scaled back before anything else: its mark on the
	// Deployment names this experiment, and nothing else would undo it.
	if err := r.endSurges(ctx, exp); err != nil {
		return ctrl.Result{}, err
	}
	// Chaos Mesh's objects go before the finalizer does, though the
	// garbage collector would take them too: it may take its time.
	if usesChaosMesh(exp) {
		left, err := r.endChaosMesh(ctx, exp, "the experiment is being deleted")
		if err != nil {
			return ctrl.Result{}, err
		}
		if left > 0 && !r.Clock.Now().After(exp.DeletionTimestamp.Add(r.ReportGrace)) {
			return ctrl.Result{RequeueAfter: time.Second}, nil
		}
	}
	// From the API server: a cache that lags must not let the finalizer go
	// with faults still on a node's assignment, where nothing would remove
	// them.
	fas, err := assignmentsIn(ctx, r.Reader, exp)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(fas) > 0 {
		if err := r.recoverAll(ctx, exp, fas); err != nil {
			return ctrl.Result{}, err
		}
		_, allRecovered := r.syncRecords(exp, fas)
		late := r.Clock.Now().After(faultsEnd(exp, fas).Add(r.ReportGrace))
		if !allRecovered && !late {
			return ctrl.Result{RequeueAfter: time.Second}, nil
		}
		if err := r.deleteAssignments(ctx, exp); err != nil {
			return ctrl.Result{}, err
		}
	}
	r.Analysis.Forget(client.ObjectKeyFromObject(exp))
	if err := r.patchFinalizer(ctx, exp, false); err != nil {
		return ctrl.Result{}, stepError(v1alpha1.ReasonFinalizerNotRemoved, fmt.Errorf("remove the finalizer %s: %w", v1alpha1.Finalizer, err))
	}
	return ctrl.Result{}, nil
}

// snapshot saves the analyzers' state in the status and notes what is new:
// nodes going NotReady and back, taints added and removed.
func (r *ExperimentReconciler) snapshot(exp *v1alpha1.Experiment) {
	spans := map[string]bool{}
	for _, s := range exp.Status.NodeSpans {
		spans[s.Node+s.From.String()+fmt.Sprint(s.To != nil)] = true
	}
	taints, evicted := len(exp.Status.Taints), len(exp.Status.Evictions)
	r.Analysis.Snapshot(exp, r.Clock.Now())
	// The first evictions are noted one by one; the rest are counted.
	for i := evicted; i < len(exp.Status.Evictions) && i < 20; i++ {
		e := exp.Status.Evictions[i]
		msg := fmt.Sprintf("pod %s evicted from %s (%s)", e.Pod, e.Node, e.Reason)
		if e.ViolatedPDB != "" {
			msg += ", violating PodDisruptionBudget " + e.ViolatedPDB
		}
		r.note(exp, true, "Evicted", "%s", msg)
	}
	for _, s := range exp.Status.NodeSpans {
		if !spans[s.Node+s.From.String()+fmt.Sprint(false)] && !spans[s.Node+s.From.String()+fmt.Sprint(true)] {
			r.note(exp, true, "NodeNotReady", "node %s NotReady since %s", s.Node, s.From.Format(time.TimeOnly))
		}
		if s.To != nil && !spans[s.Node+s.From.String()+fmt.Sprint(true)] {
			r.note(exp, false, "NodeReady", "node %s Ready again at %s after %.0fs", s.Node, s.To.Format(time.TimeOnly), s.To.Sub(s.From.Time).Seconds())
		}
	}
	for _, c := range exp.Status.Taints[min(taints, len(exp.Status.Taints)):] {
		if c.Added {
			r.note(exp, true, "Tainted", "node %s tainted %s at %s", c.Node, c.Taint, c.Time.Format(time.TimeOnly))
		} else {
			r.note(exp, false, "Untainted", "node %s lost taint %s at %s", c.Node, c.Taint, c.Time.Format(time.TimeOnly))
		}
	}
}

// resolveServiceURL replaces a host of the form NAME.NAMESPACE.svc (or
// .svc.cluster.local) by the Service's ClusterIP, so that the traffic needs
// no cluster DNS where the controller runs. Other URLs are kept.
func (r *ExperimentReconciler) resolveServiceURL(ctx context.Context, raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%q: %w", raw, err)
	}
	host := strings.TrimSuffix(u.Hostname(), ".cluster.local")
	parts := strings.Split(host, ".")
	if len(parts) != 3 || parts[2] != "svc" {
		return raw, nil
	}
	var svc corev1.Service
	if err := r.Reader.Get(ctx, client.ObjectKey{Namespace: parts[1], Name: parts[0]}, &svc); err != nil {
		return "", fmt.Errorf("Service %s/%s: %w", parts[1], parts[0], err)
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return "", fmt.Errorf("Service %s/%s has no ClusterIP", parts[1], parts[0])
	}
	if p := u.Port(); p != "" {
		u.Host = net.JoinHostPort(svc.Spec.ClusterIP, p)
	} else {
		u.Host = svc.Spec.ClusterIP
	}
	return u.String(), nil
}

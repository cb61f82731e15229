// Package controller is faultline's Experiment controller: it plans the
// targets under the safety rules, hands each node its faults through a
// FaultAssignment, follows the agents' reports, runs the analyzers, judges
// the objectives (aborting on a live breach) and writes the verdict.
package controller

import (
	"context"
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
	// AgentNamespace holds the nodes' FaultAssignments.
	AgentNamespace string
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
		// What is left was left by a controller that died before the end.
		why := "the experiment is over (" + string(exp.Status.Phase) + ")"
		return ctrl.Result{}, errors.Join(r.storeReport(ctx, exp), r.engineFor(exp).Release(ctx, exp, why))
	}
	before := exp.Status.DeepCopy()
	prev := takeReady(exp)
	res, err := r.step(ctx, exp)
	exp.Status.ObservedGeneration = exp.Generation
	settleReady(exp, prev, err)
	logChanges(ctx, before, &exp.Status)
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

// apiServerAddrs are the API server's addresses, as CIDRs of one address,
// and its ports.
type apiServerAddrs struct {
	peers []string
	ports []int32
}

// apiServerOf resolves the API server's addresses once for the plan.
func (r *ExperimentReconciler) apiServerOf(ctx context.Context, p *faultPlan) (*apiServerAddrs, error) {
	if p.apiServer == nil {
		peers, ports, err := r.apiServerPeers(ctx)
		if err != nil {
			return nil, err
		}
		p.apiServer = &apiServerAddrs{peers: peers, ports: ports}
	}
	return p.apiServer, nil
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

// syncRecords copies the agents' reports into the records, and says
// whether every agent has acknowledged its assignment (reported on its
// current generation, which it does before injecting) and whether every
// fault is recovered.
func (r *ExperimentReconciler) syncRecords(ctx context.Context, exp *v1alpha1.Experiment, fas []v1alpha1.FaultAssignment) (allAcknowledged, allRecovered bool) {
	allAcknowledged, allRecovered = true, true
	// A fault planned for an agent but not in the assignments the cache
	// shows (it lags behind the write) is acknowledged by no one. Records
	// with an action are the controller's own (a pod deleted through the
	// API), and those with an error were never assigned.
	type key struct {
		fault, target string
		round         int32
	}
	assigned := map[key]bool{}
	for _, fa := range fas {
		for _, af := range fa.Spec.Faults {
			assigned[key{af.Fault, af.Target, af.Round}] = true
		}
	}
	for _, rec := range exp.Status.Records {
		if rec.Node != "" && rec.Action == "" && rec.Error == "" && !assigned[key{rec.Fault, rec.Target, rec.Round}] {
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
			rec := r.recordRound(exp, af.Fault, af.Target, af.Round, fa.Spec.NodeName)
			if reported {
				r.applyReport(ctx, exp, rec, af, s, fa.Spec.NodeName)
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

// applyReport copies an agent's report of one fault into its record. A
// report older than the record (a cache that lags behind a read from the
// API server, a status written before another) changes nothing: a
// record's effect is never older than its state, as the timeline once said
// "holding its target resident" after "recovered".
func (r *ExperimentReconciler) applyReport(ctx context.Context, exp *v1alpha1.Experiment, rec *v1alpha1.InjectionRecord, af v1alpha1.AssignedFault, s v1alpha1.AssignedFaultStatus, node string) {
	if reportRank(s) < recordRank(rec) {
		return
	}
	if s.InjectedAt != nil && rec.InjectedAt == nil {
		rec.InjectedAt = s.InjectedAt
		r.note(exp, false, v1alpha1.ReasonInjected, "%s injected on %s (%s)", af.Fault, af.Target, node)
		if r.Metrics != nil {
			r.Metrics.InjectionLatency.Observe(s.InjectedAt.Sub(af.StartAt.Time).Seconds())
		}
	}
	// The effect comes before the recovery: the agent reads it last just
	// before it recovers.
	if s.Message != "" && rec.Effect != s.Message && (rec.RecoveredAt == nil || s.RecoveredAt != nil) {
		rec.Effect = s.Message
		r.note(exp, false, v1alpha1.ReasonFaultEffect, "%s on %s: %s", af.Fault, af.Target, s.Message)
	}
	if s.RecoveredAt != nil && rec.RecoveredAt == nil {
		rec.RecoveredAt = s.RecoveredAt
		r.note(exp, false, v1alpha1.ReasonRecovered, "%s recovered on %s (%s)", af.Fault, af.Target, node)
		if r.Metrics != nil && !s.RecoveredAt.Before(&af.Deadline) {
			r.Metrics.RecoveryLatency.Observe(s.RecoveredAt.Sub(af.Deadline.Time).Seconds())
		}
	}
	if s.Error != "" && rec.Error != s.Error && rec.Superseded == "" {
		if why := r.superseded(ctx, af); why != "" {
			rec.Superseded = why
			r.note(exp, true, v1alpha1.ReasonFaultSuperseded, "%s on %s: %s (%s)", af.Fault, af.Target, why, s.Error)
		} else {
			rec.Error = s.Error
			r.note(exp, true, v1alpha1.ReasonFaultError, "%s on %s: %s", af.Fault, af.Target, s.Error)
		}
	}
}

// reportRank and recordRank order what is known of a fault: nothing yet,
// injected, over (recovered or failed).
func reportRank(s v1alpha1.AssignedFaultStatus) int {
	switch {
	case s.RecoveredAt != nil || s.State == v1alpha1.FaultRecovered || s.State == v1alpha1.FaultFailed:
		return 2
	case s.InjectedAt != nil || s.State == v1alpha1.FaultInjected:
		return 1
	}
	return 0
}

func recordRank(rec *v1alpha1.InjectionRecord) int {
	switch {
	case rec.RecoveredAt != nil:
		return 2
	case rec.InjectedAt != nil:
		return 1
	}
	return 0
}

// record is the fault's record on target, made on first use: for what the
// controller does itself (an object it creates, a pod it deletes).
func (r *ExperimentReconciler) record(exp *v1alpha1.Experiment, fault, target string) *v1alpha1.InjectionRecord {
	return r.recordRound(exp, fault, target, 0, "")
}

// recordRound is record for one round of a fault that acts again every
// interval: a pod killed in two rounds has two records.
func (r *ExperimentReconciler) recordRound(exp *v1alpha1.Experiment, fault, target string, round int32, node string) *v1alpha1.InjectionRecord {
	for i := range exp.Status.Records {
		if rec := &exp.Status.Records[i]; rec.Fault == fault && rec.Target == target && rec.Round == round {
			return rec
		}
	}
	exp.Status.Records = append(exp.Status.Records, v1alpha1.InjectionRecord{Fault: fault, Target: target, Node: node, Round: round})
	return &exp.Status.Records[len(exp.Status.Records)-1]
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
		r.note(exp, true, v1alpha1.ReasonEvicted, "%s", msg)
	}
	for _, s := range exp.Status.NodeSpans {
		if !spans[s.Node+s.From.String()+fmt.Sprint(false)] && !spans[s.Node+s.From.String()+fmt.Sprint(true)] {
			r.note(exp, true, v1alpha1.ReasonNodeNotReady, "node %s NotReady since %s", s.Node, s.From.Format(time.TimeOnly))
		}
		if s.To != nil && !spans[s.Node+s.From.String()+fmt.Sprint(true)] {
			r.note(exp, false, v1alpha1.ReasonNodeReady, "node %s Ready again at %s after %.0fs", s.Node, s.To.Format(time.TimeOnly), s.To.Sub(s.From.Time).Seconds())
		}
	}
	for _, c := range exp.Status.Taints[min(taints, len(exp.Status.Taints)):] {
		if c.Added {
			r.note(exp, true, v1alpha1.ReasonTainted, "node %s tainted %s at %s", c.Node, c.Taint, c.Time.Format(time.TimeOnly))
		} else {
			r.note(exp, false, v1alpha1.ReasonUntainted, "node %s lost taint %s at %s", c.Node, c.Taint, c.Time.Format(time.TimeOnly))
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

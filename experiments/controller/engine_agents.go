package controller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// agentEngine is faultline's own engine: each node's agent carries the
// faults of its node's FaultAssignment, acknowledges them on its status's
// observedGeneration before injecting, and recovers each at its absolute
// deadline by its own clock, even cut off from the API server.
type agentEngine struct{ r *ExperimentReconciler }

func (agentEngine) Available(*v1alpha1.Experiment) (bool, error) { return true, nil }

func (agentEngine) Check(context.Context, *v1alpha1.Experiment, *faultPlan) error { return nil }

// Start writes each node's share of the faults, as each family assigns
// them, with one record per fault and target.
func (e agentEngine) Start(ctx context.Context, exp *v1alpha1.Experiment, p *faultPlan) error {
	byNode := map[string][]v1alpha1.AssignedFault{}
	var nodes []string
	exp.Status.Records = nil
	for i := range exp.Spec.Faults {
		f := &exp.Spec.Faults[i]
		for _, t := range p.targets {
			af, err := drivers[f.Type].Assign(ctx, e.r, exp, f, t, p)
			if err != nil {
				return err
			}
			if af == nil {
				break // the family assigns it later, or never
			}
			if _, seen := byNode[t.node]; !seen {
				nodes = append(nodes, t.node)
			}
			byNode[t.node] = append(byNode[t.node], *af)
			exp.Status.Records = append(exp.Status.Records, v1alpha1.InjectionRecord{Fault: f.Name, Target: t.String(), Node: t.node})
		}
	}
	return eachNode(ctx, nodes, func(ctx context.Context, node string) error {
		faults := byNode[node]
		return e.r.writeAssignment(ctx, exp, node, func([]v1alpha1.AssignedFault) []v1alpha1.AssignedFault { return faults })
	})
}

// Act deletes the chosen pods through the API, or has each pod's node's
// agent signal its container's main process.
func (e agentEngine) Act(ctx context.Context, exp *v1alpha1.Experiment, f *v1alpha1.Fault, a podAction, pods []*corev1.Pod, end time.Time) error {
	now := e.r.Clock.Now()
	for _, p := range pods {
		target := p.Namespace + "/" + p.Name
		// One record per fault, pod and round, found again by an action
		// retried after a lost status write.
		rec := e.r.recordRound(exp, f.Name, target, a.round, p.Spec.NodeName)
		if a.del {
			*rec = e.deletePod(ctx, f, p, a.grace, now)
			rec.Round = a.round
			continue
		}
		ci, err := containerIndex(&p.Spec, a.container)
		if err != nil {
			return fmt.Errorf("%s: %w", a.containerField, err)
		}
		cname := p.Spec.Containers[ci].Name
		cid, _ := containerID(p, cname)
		if cid == "" {
			rec.Error = "container " + cname + " has no ID yet"
			continue
		}
		if !containerRunning(p, cname) {
			// Crash-looping, or exited: its last ID names no process.
			rec.Superseded = "container " + cname + " was not running when its turn came: nothing to signal"
			continue
		}
		id := target
		if a.round > 1 {
			id = fmt.Sprintf("%s#%d", target, a.round)
		}
		af := v1alpha1.AssignedFault{
			// The pods were chosen, and the choice written, before the
			// action: a retry after a lost status write finds its own
			// earlier assignment.
			ID: faultID(exp, f.Name, id), Fault: f.Name, Type: f.Type, Target: target, PodUID: p.UID, Round: a.round,
			StartAt: metav1.NewTime(now), Deadline: metav1.NewTime(end),
			Signal: &v1alpha1.ContainerSignal{ContainerID: cid, Container: cname, Signal: a.signal},
		}
		placed, err := e.r.addAssignedFault(ctx, exp, p.Spec.NodeName, af)
		if err != nil {
			return err
		}
		rec.Action = fmt.Sprintf("%s to the main process of container %s (%s) through the node's agent", placed.Signal.Signal, placed.Signal.Container, placed.Signal.ContainerID)
	}
	return nil
}

// deletePod deletes a pod through the API, with the grace period given or
// the pod's own: the kubelet then sends SIGTERM itself.
func (e agentEngine) deletePod(ctx context.Context, f *v1alpha1.Fault, p *corev1.Pod, grace *int64, now time.Time) v1alpha1.InjectionRecord {
	opts := &client.DeleteOptions{}
	if p.UID != "" {
		// The pod read, not one made anew under its name since.
		opts.Preconditions = &metav1.Preconditions{UID: &p.UID}
	}
	how := "the pod's own grace period"
	if grace != nil {
		opts.GracePeriodSeconds = grace
		how = fmt.Sprintf("grace %ds", *grace)
	}
	rec := v1alpha1.InjectionRecord{Fault: f.Name, Target: p.Namespace + "/" + p.Name, Node: p.Spec.NodeName, Action: "delete through the API with " + how}
	if err := e.r.Delete(ctx, p, opts); err != nil && !apierrors.IsNotFound(err) {
		rec.Error = err.Error()
	} else {
		t := metav1.NewTime(now)
		rec.InjectedAt, rec.RecoveredAt = &t, &t
	}
	return rec
}

func (agentEngine) Drive(context.Context, *v1alpha1.Experiment) error { return nil }

// Observe copies the agents' reports into the records.
func (e agentEngine) Observe(ctx context.Context, exp *v1alpha1.Experiment) (engineState, error) {
	fas, err := e.r.assignments(ctx, exp)
	if err != nil {
		return engineState{}, err
	}
	return e.state(ctx, exp, fas), nil
}

// Finish only observes: each agent recovers at the deadline by itself.
func (e agentEngine) Finish(ctx context.Context, exp *v1alpha1.Experiment) (engineState, error) {
	return e.Observe(ctx, exp)
}

// Stop asks every agent to recover the experiment's faults now. It reads
// the assignments from the API server: a cache that lags must not miss a
// fault that is still on a node.
func (e agentEngine) Stop(ctx context.Context, exp *v1alpha1.Experiment, _ string) (engineState, error) {
	fas, err := assignmentsIn(ctx, e.r.Reader, e.r.AgentNamespace, exp)
	if err != nil {
		return engineState{}, err
	}
	if err := e.r.recoverAll(ctx, exp, fas); err != nil {
		return engineState{}, err
	}
	return e.state(ctx, exp, fas), nil
}

// Release takes the experiment's faults off every node.
func (e agentEngine) Release(ctx context.Context, exp *v1alpha1.Experiment, _ string) error {
	return e.r.deleteAssignments(ctx, exp)
}

func (e agentEngine) state(ctx context.Context, exp *v1alpha1.Experiment, fas []v1alpha1.FaultAssignment) engineState {
	acked, recovered := e.r.syncRecords(ctx, exp, fas)
	return engineState{
		acknowledged: acked, reason: v1alpha1.ReasonAgentsAcknowledged,
		message:   "every agent has acknowledged its faults (its status's observedGeneration)",
		recovered: recovered, end: faultsEnd(exp, fas),
	}
}

// superseded says why a signal the agent could not deliver had nothing
// left to act on: its pod was already being deleted, or gone, as when the
// rollout itself scaled that old pod down in the instant the point was
// reached. "" when the pod is still there: then it is a real error.
func (r *ExperimentReconciler) superseded(ctx context.Context, af v1alpha1.AssignedFault) string {
	if af.Signal == nil || af.PodUID == "" {
		return ""
	}
	ns, name := splitKey(af.Target)
	var reader client.Reader = r.Client
	if r.Reader != nil {
		reader = r.Reader
	}
	var p corev1.Pod
	err := reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p)
	switch {
	case apierrors.IsNotFound(err), err == nil && p.UID != af.PodUID:
		return "its pod was deleted before the signal reached it: nothing was left to signal"
	case err == nil && p.DeletionTimestamp != nil:
		return "its pod was already terminating (by the rollout, or someone else) when the signal came: nothing was left to signal"
	}
	return ""
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

// containerRunning reports whether the pod's status says the container
// runs.
func containerRunning(p *corev1.Pod, name string) bool {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == name {
			return cs.State.Running != nil
		}
	}
	return false
}

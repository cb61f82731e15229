package controller

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// A node has one FaultAssignment, named after it in the agents' namespace,
// that holds the faults of every experiment placed there: RBAC can then give
// each node's agent its own by name and no other. The controller sees only
// an experiment's share of it (a view) and writes only that share back, by
// read-modify-write on the API server's current copy, so that two
// experiments on one node never undo each other.

// maxNodeFaults is the CRD's bound on one node's faults (MaxItems).
const maxNodeFaults = 1024

// assignments returns a view of each FaultAssignment that holds faults of
// exp: the object with only exp's faults in its spec and status.
func (r *ExperimentReconciler) assignments(ctx context.Context, exp *v1alpha1.Experiment) ([]v1alpha1.FaultAssignment, error) {
	return assignmentsIn(ctx, r.Client, r.AgentNamespace, exp)
}

func assignmentsIn(ctx context.Context, c client.Reader, ns string, exp *v1alpha1.Experiment) ([]v1alpha1.FaultAssignment, error) {
	var list v1alpha1.FaultAssignmentList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	var out []v1alpha1.FaultAssignment
	for i := range list.Items {
		if v, ok := shareOf(&list.Items[i], exp.UID); ok {
			out = append(out, v)
		}
	}
	return out, nil
}

// shareOf is fa with only the faults of the experiment uid, and whether
// it holds any.
func shareOf(fa *v1alpha1.FaultAssignment, uid types.UID) (v1alpha1.FaultAssignment, bool) {
	v := *fa.DeepCopy()
	v.Spec.Faults, v.Status.Faults = nil, nil
	ids := map[string]bool{}
	for _, f := range fa.Spec.Faults {
		if f.Experiment.UID == uid {
			v.Spec.Faults = append(v.Spec.Faults, f)
			ids[f.ID] = true
		}
	}
	for _, s := range fa.Status.Faults {
		if ids[s.ID] {
			v.Status.Faults = append(v.Status.Faults, s)
		}
	}
	return v, len(v.Spec.Faults) > 0
}

// experimentsOf wakes every experiment with a fault in fa.
func experimentsOf(fa *v1alpha1.FaultAssignment) []reconcile.Request {
	seen := map[types.UID]bool{}
	var out []reconcile.Request
	for _, f := range fa.Spec.Faults {
		if !seen[f.Experiment.UID] {
			seen[f.Experiment.UID] = true
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: f.Experiment.Namespace, Name: f.Experiment.Name}})
		}
	}
	return out
}

// writeAssignment sets exp's faults on node to what set makes of the ones
// there now, creating the node's FaultAssignment if need be. The other
// experiments' faults are kept as they are.
func (r *ExperimentReconciler) writeAssignment(ctx context.Context, exp *v1alpha1.Experiment, node string, set func(mine []v1alpha1.AssignedFault) []v1alpha1.AssignedFault) error {
	ref := v1alpha1.ExperimentRef{Namespace: exp.Namespace, Name: exp.Name, UID: exp.UID}
	err := r.editAssignment(ctx, node, func(fa *v1alpha1.FaultAssignment) error {
		var mine []v1alpha1.AssignedFault
		for _, f := range fa.Spec.Faults {
			if f.Experiment.UID == exp.UID {
				mine = append(mine, f)
			}
		}
		want := map[string]v1alpha1.AssignedFault{}
		var order []string
		for _, f := range set(mine) {
			f.Experiment = ref
			if _, dup := want[f.ID]; !dup {
				order = append(order, f.ID)
			}
			want[f.ID] = f
		}
		// In place, by ID: the others' faults and the order stay as they
		// are, so that a write that changes nothing changes nothing.
		var faults []v1alpha1.AssignedFault
		for _, f := range fa.Spec.Faults {
			switch w, ok := want[f.ID]; {
			case f.Experiment.UID != exp.UID:
				faults = append(faults, f)
			case ok:
				faults = append(faults, w)
				delete(want, f.ID)
			}
		}
		for _, id := range order {
			if w, ok := want[id]; ok {
				faults = append(faults, w)
			}
		}
		if len(faults) > maxNodeFaults {
			return fmt.Errorf("node %s would hold %d faults of all experiments, more than the %d a FaultAssignment holds: run fewer experiments on it at once", node, len(faults), maxNodeFaults)
		}
		fa.Spec.Faults = faults
		return nil
	})
	if err != nil {
		return fmt.Errorf("write FaultAssignment %s: %w", node, err)
	}
	return nil
}

// editAssignment applies edit to the API server's current copy of node's
// FaultAssignment (a new one if there is none) and saves it when it
// changed; one left with no fault is deleted. The cache may lag behind
// this controller's own last write, and an agent's status write changes
// the resourceVersion too: a conflict reads again and retries.
func (r *ExperimentReconciler) editAssignment(ctx context.Context, node string, edit func(*v1alpha1.FaultAssignment) error) error {
	// Agents report about once a second on a busy node: a few seconds of
	// retries outlast any run of them.
	backoff := wait.Backoff{Steps: 10, Duration: 20 * time.Millisecond, Factor: 1.5, Jitter: 0.2}
	return retry.OnError(backoff, func(err error) bool {
		return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
	}, func() error {
		fa := &v1alpha1.FaultAssignment{}
		err := r.Reader.Get(ctx, client.ObjectKey{Namespace: r.AgentNamespace, Name: node}, fa)
		exists := err == nil
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		if !exists {
			fa = &v1alpha1.FaultAssignment{ObjectMeta: metav1.ObjectMeta{Namespace: r.AgentNamespace, Name: node, Labels: map[string]string{v1alpha1.LabelNode: node}}}
			fa.Spec.NodeName = node
		}
		before := fa.Spec.DeepCopy()
		if err := edit(fa); err != nil {
			return err
		}
		switch {
		case !exists && len(fa.Spec.Faults) == 0:
			return nil
		case !exists:
			err := r.Create(ctx, fa)
			if apierrors.IsNotFound(err) {
				// The namespace itself: no agent could read it anyway.
				return fmt.Errorf("the agents' namespace %s does not exist: are faultline's agents installed (chart value agent.enabled, controller flag --agent-namespace)? %w", r.AgentNamespace, err)
			}
			return err
		case len(fa.Spec.Faults) == 0:
			// Only if nobody changed it since it was read: a fault placed
			// in between is a conflict, and the retry keeps it.
			pre := metav1.Preconditions{UID: &fa.UID, ResourceVersion: &fa.ResourceVersion}
			return client.IgnoreNotFound(r.Delete(ctx, fa, client.Preconditions(pre)))
		case equality.Semantic.DeepEqual(before, &fa.Spec):
			return nil
		}
		return r.Update(ctx, fa)
	})
}

// assignmentWriters is how many nodes' FaultAssignments are written at
// once: one at a time, a fan-out to 1,000 nodes took a round trip each
// (experiments/fleet's benchmark). The client's rate limit
// (--kube-api-qps) still bounds the writes per second.
const assignmentWriters = 16

// eachNode runs write for every node, assignmentWriters at a time, and
// returns the first error.
func eachNode(ctx context.Context, nodes []string, write func(ctx context.Context, node string) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(assignmentWriters)
	for _, node := range nodes {
		g.Go(func() error { return write(ctx, node) })
	}
	return g.Wait()
}

// recoverAll asks the agents to recover exp's faults now.
func (r *ExperimentReconciler) recoverAll(ctx context.Context, exp *v1alpha1.Experiment, fas []v1alpha1.FaultAssignment) error {
	var nodes []string
	for _, fa := range fas {
		pending := false
		for _, f := range fa.Spec.Faults {
			pending = pending || !f.Recover
		}
		if pending {
			nodes = append(nodes, fa.Spec.NodeName)
		}
	}
	return eachNode(ctx, nodes, func(ctx context.Context, node string) error {
		return r.writeAssignment(ctx, exp, node, func(mine []v1alpha1.AssignedFault) []v1alpha1.AssignedFault {
			for i := range mine {
				mine[i].Recover = true
			}
			return mine
		})
	})
}

// deleteAssignments takes exp's faults off every node; an agent recovers
// a fault that is no longer assigned.
func (r *ExperimentReconciler) deleteAssignments(ctx context.Context, exp *v1alpha1.Experiment) error {
	// From the API server: the cache may not have a fault placed just now.
	fas, err := assignmentsIn(ctx, r.Reader, r.AgentNamespace, exp)
	if err != nil {
		return err
	}
	nodes := make([]string, 0, len(fas))
	for _, fa := range fas {
		nodes = append(nodes, fa.Spec.NodeName)
	}
	if err := eachNode(ctx, nodes, func(ctx context.Context, node string) error {
		return r.writeAssignment(ctx, exp, node, func([]v1alpha1.AssignedFault) []v1alpha1.AssignedFault { return nil })
	}); err != nil {
		return err
	}
	r.Analysis.Forget(client.ObjectKeyFromObject(exp))
	return nil
}

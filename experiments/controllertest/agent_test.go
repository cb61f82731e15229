package controllertest

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// runAgent stands in for every node's agent, as the agent speaks to the
// controller: it acknowledges each FaultAssignment's generation, reports
// each fault injected from its start and recovered at its deadline, or at
// once when the controller asks (recover: true), and reports a fault that
// is no longer assigned no more. It injects nothing.
func runAgent(ctx context.Context, c client.Client) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var list v1alpha1.FaultAssignmentList
		if err := c.List(ctx, &list); err != nil {
			continue
		}
		for i := range list.Items {
			fa := &list.Items[i]
			if report(fa, time.Now()) {
				_ = c.Status().Update(ctx, fa)
			}
		}
	}
}

// report writes what an agent would of fa at now, and says whether it
// changed.
func report(fa *v1alpha1.FaultAssignment, now time.Time) bool {
	was := map[string]v1alpha1.AssignedFaultStatus{}
	for _, s := range fa.Status.Faults {
		was[s.ID] = s
	}
	changed := fa.Status.ObservedGeneration != fa.Generation
	var faults []v1alpha1.AssignedFaultStatus
	for _, f := range fa.Spec.Faults {
		s := was[f.ID]
		s.ID = f.ID
		at := metav1.NewTime(now)
		switch {
		case s.State == v1alpha1.FaultRecovered:
		case f.Recover || !now.Before(f.Deadline.Time):
			if s.InjectedAt == nil && !f.Recover {
				s.InjectedAt = &at
			}
			s.State, s.RecoveredAt = v1alpha1.FaultRecovered, &at
		case !now.Before(f.StartAt.Time) && s.State != v1alpha1.FaultInjected:
			s.State, s.InjectedAt = v1alpha1.FaultInjected, &at
		case s.State == "":
			s.State = v1alpha1.FaultPending
		}
		changed = changed || s != was[f.ID]
		faults = append(faults, s)
	}
	fa.Status.ObservedGeneration, fa.Status.Faults = fa.Generation, faults
	return changed || len(faults) != len(was)
}

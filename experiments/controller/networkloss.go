package controller

import (
	"context"
	"fmt"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// networkLossDriver is the NetworkLoss family: the node's agent drops a
// share of the target's packets in its network namespace.
type networkLossDriver struct{ nothingToDo }

// Assign resolves towardAPIServer to the API server's addresses and
// ports, which the agent cannot know.
func (networkLossDriver) Assign(ctx context.Context, r *ExperimentReconciler, exp *v1alpha1.Experiment, f *v1alpha1.Fault, t target, p *faultPlan) (*v1alpha1.AssignedFault, error) {
	nl := f.NetworkLoss.DeepCopy()
	if nl.TowardAPIServer {
		api, err := r.apiServerOf(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("spec.faults[%s].networkLoss.towardAPIServer: %w", f.Name, err)
		}
		nl.Peers = append(nl.Peers, api.peers...)
		nl.Ports = append(nl.Ports, api.ports...)
		if nl.Protocol == "" {
			nl.Protocol = "tcp"
		}
		nl.TowardAPIServer = false
	}
	af := assigned(exp, f, t)
	af.NetworkLoss = nl
	return &af, nil
}

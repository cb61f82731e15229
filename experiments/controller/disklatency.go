package controller

import (
	"context"
	"fmt"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// diskLatencyDriver is the DiskLatency family: the node's agent traces a
// process (a pod's container's main one, or one it finds on the node) and
// holds its chosen calls.
type diskLatencyDriver struct{ nothingToDo }

// Assign names the container of a pod target, which the agent finds by
// its runtime ID.
func (diskLatencyDriver) Assign(_ context.Context, _ *ExperimentReconciler, exp *v1alpha1.Experiment, f *v1alpha1.Fault, t target, _ *faultPlan) (*v1alpha1.AssignedFault, error) {
	af := assigned(exp, f, t)
	af.DiskLatency = f.DiskLatency.DeepCopy()
	if t.pod != nil {
		id, err := containerID(t.pod, f.DiskLatency.Container)
		if err != nil {
			return nil, fmt.Errorf("spec.faults[%s].diskLatency.container: pod %s: %w", f.Name, t, err)
		}
		af.ContainerID = id
	}
	return &af, nil
}

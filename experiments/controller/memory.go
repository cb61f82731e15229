package controller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// memoryDriver is the MemoryPressure family: the node's agent runs a
// stressor in the target container's memory cgroup, or node-wide.
type memoryDriver struct{ nothingToDo }

// Plan sizes each memory fault on each target against what bounds it.
func (memoryDriver) Plan(ctx context.Context, r *ExperimentReconciler, exp *v1alpha1.Experiment, p *faultPlan) error {
	mem, err := r.planMemory(ctx, exp, p.targets)
	p.memory = mem
	return err
}

// Assign is the planned size, the ramp, and a deadline shortened by the
// hold; a pod target's container is named by its runtime ID.
func (memoryDriver) Assign(_ context.Context, _ *ExperimentReconciler, exp *v1alpha1.Experiment, f *v1alpha1.Fault, t target, p *faultPlan) (*v1alpha1.AssignedFault, error) {
	a, ok := p.memory[memoryKey(f.Name, t)]
	if !ok {
		return nil, fmt.Errorf("spec.faults[%s].memoryPressure: no size planned on %s", f.Name, t)
	}
	af := assigned(exp, f, t)
	af.MemoryPressure = &a
	af.Deadline = metav1.NewTime(memoryDeadline(f.MemoryPressure, a, af.StartAt.Time, f.Duration.Duration))
	if t.pod != nil {
		id, err := containerID(t.pod, f.MemoryPressure.Container)
		if err != nil {
			return nil, fmt.Errorf("spec.faults[%s].memoryPressure.container: pod %s: %w", f.Name, t, err)
		}
		af.ContainerID = id
	}
	return &af, nil
}

// memoryPlan is each memory fault's size in bytes, by fault and target.
type memoryPlan map[string]v1alpha1.AssignedMemoryPressure

func memoryKey(fault string, t target) string { return fault + "/" + t.String() }

// planMemory resolves every MemoryPressure fault's size on each target
// against what bounds it there: the container's memory limit for a pod,
// the node's allocatable memory for a node. What the schema cannot know
// (a size above a limit, a share of a limit that is not set) is refused
// here, before anything is injected, naming the field.
func (r *ExperimentReconciler) planMemory(ctx context.Context, exp *v1alpha1.Experiment, ts []target) (memoryPlan, error) {
	plan := memoryPlan{}
	for _, f := range exp.Spec.Faults {
		m := f.MemoryPressure
		if f.Type != v1alpha1.FaultMemoryPressure || m == nil {
			continue
		}
		field := fmt.Sprintf("spec.faults[%s].memoryPressure", f.Name)
		for _, t := range ts {
			var bound int64
			var what string
			if t.pod != nil {
				i, err := containerIndex(&t.pod.Spec, m.Container)
				if err != nil {
					return nil, fmt.Errorf("%s.container: pod %s: %w", field, t, err)
				}
				c := t.pod.Spec.Containers[i]
				if lim, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
					bound, what = lim.Value(), fmt.Sprintf("the memory limit of container %s of pod %s", c.Name, t)
				} else if m.Percent != 0 {
					return nil, fmt.Errorf("%s.percent: container %s of pod %s has no memory limit to take a share of; give a size instead", field, c.Name, t)
				}
			} else {
				var n corev1.Node
				if err := r.Get(ctx, client.ObjectKey{Name: t.node}, &n); err != nil {
					return nil, fmt.Errorf("%s: node %s: %w", field, t.node, err)
				}
				alloc := n.Status.Allocatable[corev1.ResourceMemory]
				bound, what = alloc.Value(), fmt.Sprintf("the allocatable memory of node %s", t.node)
			}
			size := int64(0)
			if m.Size != nil {
				size = m.Size.Value()
			} else {
				size = bound * int64(m.Percent) / 100
			}
			if size <= 0 {
				return nil, fmt.Errorf("%s: %d%% of %s is no memory at all", field, m.Percent, what)
			}
			switch {
			case t.pod != nil && bound > 0 && size > bound && !m.PushPastLimit:
				return nil, fmt.Errorf("%s.size: %s is above %s (%s); the kernel would OOM-kill before the size is reached: set pushPastLimit: true to force that on purpose, or a size up to the limit",
					field, bytesString(size), what, bytesString(bound))
			case t.pod == nil && bound > 0 && size > bound && !m.Force:
				return nil, fmt.Errorf("%s.size: %s is above %s (%s); set force: true to push the node past it on purpose",
					field, bytesString(size), what, bytesString(bound))
			}
			plan[memoryKey(f.Name, t)] = v1alpha1.AssignedMemoryPressure{SizeBytes: size, RampBytesPerSecond: m.RampPerSecond.Value(), PushPastLimit: m.PushPastLimit}
		}
	}
	return plan, nil
}

// memoryDeadline ends a memory fault early when it has a hold: the ramp
// (size over rate, in whole seconds) and then the hold, within the fault's
// duration.
func memoryDeadline(m *v1alpha1.MemoryPressure, a v1alpha1.AssignedMemoryPressure, at time.Time, duration time.Duration) time.Time {
	end := at.Add(duration)
	if m == nil || m.Hold == nil || a.RampBytesPerSecond <= 0 {
		return end
	}
	ramp := time.Duration((a.SizeBytes+a.RampBytesPerSecond-1)/a.RampBytesPerSecond) * time.Second
	if held := at.Add(ramp + m.Hold.Duration); held.Before(end) {
		return held
	}
	return end
}

func bytesString(n int64) string { return resource.NewQuantity(n, resource.BinarySI).String() }

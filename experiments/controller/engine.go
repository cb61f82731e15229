package controller

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// Engine injects the faults that run on nodes and in pods, and a Rollout
// fault's action at its point: faultline's agents through each node's
// FaultAssignment, or Chaos Mesh through its objects. The phases call it
// and never ask which one runs; spec.engine picks it, in engineFor alone.
type Engine interface {
	// Available ends the experiment in Error (false) when the engine
	// cannot run in this cluster at all.
	Available(exp *v1alpha1.Experiment) (bool, error)
	// Check refuses, before anything starts, what the engine cannot carry,
	// naming the field; an error that waiting may cure is transient.
	Check(ctx context.Context, exp *v1alpha1.Experiment, p *faultPlan) error
	// Start hands the planned faults over, from the experiment's start
	// time, with one record per fault and target.
	Start(ctx context.Context, exp *v1alpha1.Experiment, p *faultPlan) error
	// Act does a to the pods chosen at a Rollout's point or in a PodKill's
	// round, until end.
	Act(ctx context.Context, exp *v1alpha1.Experiment, f *v1alpha1.Fault, a podAction, pods []*corev1.Pod, end time.Time) error
	// Drive moves the engine's faults along, once a pass while the
	// experiment holds.
	Drive(ctx context.Context, exp *v1alpha1.Experiment) error
	// Observe copies what the injectors report into the records.
	Observe(ctx context.Context, exp *v1alpha1.Experiment) (engineState, error)
	// Finish, once every deadline has passed, removes what is left of the
	// faults and says whether all of them are recovered.
	Finish(ctx context.Context, exp *v1alpha1.Experiment) (engineState, error)
	// Stop ends every fault now: an abort, a deletion.
	Stop(ctx context.Context, exp *v1alpha1.Experiment, why string) (engineState, error)
	// Release removes what is left of an experiment that is over.
	Release(ctx context.Context, exp *v1alpha1.Experiment, why string) error
}

// engineState is what an engine knows of an experiment's faults.
type engineState struct {
	// acknowledged: every fault that has started is in place, or known to
	// have failed; reason and message say how, warning when some failed.
	acknowledged    bool
	reason, message string
	warning         bool
	// recovered: every fault is known recovered.
	recovered bool
	// end is when the faults will have ended at the latest: their
	// deadlines (an agent cut off recovers by its own clock), or the stop.
	end time.Time
}

// engines are the engines by spec.engine.
var engines = map[v1alpha1.Engine]func(*ExperimentReconciler) Engine{
	v1alpha1.EngineFaultline: func(r *ExperimentReconciler) Engine { return agentEngine{r} },
	v1alpha1.EngineChaosMesh: func(r *ExperimentReconciler) Engine { return chaosMeshEngine{r} },
}

// engineFor is the experiment's engine; faultline's when it names none.
func (r *ExperimentReconciler) engineFor(exp *v1alpha1.Experiment) Engine {
	if e, ok := engines[exp.Spec.Engine]; ok {
		return e(r)
	}
	return engines[v1alpha1.EngineFaultline](r)
}

// podAction is what is done to each pod that a Rollout's point or a
// PodKill's round chose.
type podAction struct {
	// del deletes the pod through the API, with grace (nil: the pod's
	// own); otherwise signal goes to container's main process (the first
	// container when empty) through the node's agent.
	del       bool
	grace     *int64
	signal    string
	container string
	// containerField names container in the spec, for errors.
	containerField string
	// round of a PodKill, from 1; 0 for a Rollout.
	round int32
}

// actedAtAPoint is a driver whose faults act through Engine.Act when their
// point or round comes, not from their start.
type actedAtAPoint interface{ actsThroughEngine() }

// actsAtAPoint reports whether f's family acts through Engine.Act.
func actsAtAPoint(f *v1alpha1.Fault) bool {
	_, ok := drivers[f.Type].(actedAtAPoint)
	return ok
}

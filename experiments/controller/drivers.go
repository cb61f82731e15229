package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// Driver is one fault family's part in the controller: what the phases do
// that depends on the family goes through it, so that a family is one
// driver, registered in drivers, and the phases never ask which family a
// fault is. Each method acts on every fault of its family in the
// experiment; one that has nothing to do for its family returns nil.
type Driver interface {
	// Plan checks the family's faults against the cluster before anything
	// is injected, what the schema cannot know (a size above a container's
	// limit, more pods than the blast radius allows), naming the field,
	// and adds what their injection needs to the plan. A *SafetyError
	// refuses the experiment; another error fails it as invalid.
	Plan(ctx context.Context, r *ExperimentReconciler, exp *v1alpha1.Experiment, p *faultPlan) error
	// Assign is the fault on one target as its node's agent carries it,
	// or nil for a fault no agent carries from the start (a Rollout's
	// signal waits for its point; a Surge is the controller's own).
	Assign(ctx context.Context, r *ExperimentReconciler, exp *v1alpha1.Experiment, f *v1alpha1.Fault, t target, p *faultPlan) (*v1alpha1.AssignedFault, error)
	// Drive acts through the API, once a pass while the experiment holds.
	Drive(ctx context.Context, r *ExperimentReconciler, exp *v1alpha1.Experiment) error
	// Follow, once a pass after the faults' end until the verdict, only
	// observes: what a fault set going through the API (a rollout) may
	// outlast it, and its end belongs in the record. Nothing is started.
	Follow(ctx context.Context, r *ExperimentReconciler, exp *v1alpha1.Experiment) error
	// End undoes now what the family's faults changed through the API: at
	// an abort, a deletion, and for a controller that restarts on an
	// experiment already over.
	End(ctx context.Context, r *ExperimentReconciler, exp *v1alpha1.Experiment) error
	// Missed says, for the verdict, which of the family's faults never
	// happened and why.
	Missed(exp *v1alpha1.Experiment) []string
}

// drivers are the fault families' drivers, by fault type: the one place a
// family is registered.
var drivers = map[v1alpha1.FaultType]Driver{
	v1alpha1.FaultNetworkLoss:    networkLossDriver{},
	v1alpha1.FaultDiskLatency:    diskLatencyDriver{},
	v1alpha1.FaultMemoryPressure: memoryDriver{},
	v1alpha1.FaultRollout:        rolloutDriver{},
	v1alpha1.FaultSurge:          surgeDriver{},
	v1alpha1.FaultPodKill:        podKillDriver{},
}

// driversOf are the drivers of the families the experiment uses, in the
// order the spec first names them.
func driversOf(exp *v1alpha1.Experiment) ([]Driver, error) {
	var types []v1alpha1.FaultType
	for _, f := range exp.Spec.Faults {
		if !slices.Contains(types, f.Type) {
			types = append(types, f.Type)
		}
	}
	out := make([]Driver, 0, len(types))
	for _, t := range types {
		d, ok := drivers[t]
		if !ok {
			return nil, errors.New("spec.faults: no driver for fault type " + string(t))
		}
		out = append(out, d)
	}
	return out, nil
}

// faultsOf are the experiment's faults of one driver's family.
func faultsOf(exp *v1alpha1.Experiment, d Driver) []*v1alpha1.Fault {
	var out []*v1alpha1.Fault
	for i := range exp.Spec.Faults {
		if f := &exp.Spec.Faults[i]; drivers[f.Type] == d {
			out = append(out, f)
		}
	}
	return out
}

// faultPlan is what plan resolved, for the drivers and the engine.
type faultPlan struct {
	// targets are the pods or nodes the faults act on, after the safety
	// rules; none for a Deployment target.
	targets []target
	// deployment is spec.targets.deployment's.
	deployment *appsv1.Deployment
	// workloads are Deployments measured besides those on the targets.
	workloads []string
	// notes say what the safety rules decided.
	notes []string
	// memory is each memory fault's size, by fault and target.
	memory memoryPlan
	// apiServer is the API server's addresses and ports, resolved on
	// first use.
	apiServer *apiServerAddrs
}

// assigned is the part of an assigned fault that every family shares:
// its ID, its target and its window from the experiment's start.
func assigned(exp *v1alpha1.Experiment, f *v1alpha1.Fault, t target) v1alpha1.AssignedFault {
	start, end := faultWindow(exp, f)
	af := v1alpha1.AssignedFault{
		ID: faultID(exp, f.Name, t.String()), Fault: f.Name, Type: f.Type, Target: t.String(),
		StartAt: metav1.NewTime(start), Deadline: metav1.NewTime(end),
	}
	if t.pod != nil {
		af.PodUID = t.pod.UID
	}
	return af
}

// faultID names a fault on a node cluster-wide: injectors name what they
// add after it.
func faultID(exp *v1alpha1.Experiment, fault, target string) string {
	sum := sha256.Sum256([]byte(string(exp.UID) + "/" + fault + "/" + target))
	return "fl-" + hex.EncodeToString(sum[:8])
}

// nothingToDo is embedded by drivers for the methods their family does not
// use.
type nothingToDo struct{}

func (nothingToDo) Plan(context.Context, *ExperimentReconciler, *v1alpha1.Experiment, *faultPlan) error {
	return nil
}

func (nothingToDo) Assign(context.Context, *ExperimentReconciler, *v1alpha1.Experiment, *v1alpha1.Fault, target, *faultPlan) (*v1alpha1.AssignedFault, error) {
	return nil, nil
}

func (nothingToDo) Drive(context.Context, *ExperimentReconciler, *v1alpha1.Experiment) error {
	return nil
}

func (nothingToDo) Follow(context.Context, *ExperimentReconciler, *v1alpha1.Experiment) error {
	return nil
}

func (nothingToDo) End(context.Context, *ExperimentReconciler, *v1alpha1.Experiment) error {
	return nil
}

func (nothingToDo) Missed(*v1alpha1.Experiment) []string { return nil }

package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

func assignedExperiment(name string) *v1alpha1.Experiment {
	return &v1alpha1.Experiment{ObjectMeta: metav1.ObjectMeta{Namespace: "dept", Name: name, UID: types.UID("uid-" + name)}}
}

// nodeAssignment builds node's FaultAssignment holding the given faults,
// each "EXPERIMENT/ID", reported Injected.
func nodeAssignment(node string, faults ...[2]string) *v1alpha1.FaultAssignment {
	fa := &v1alpha1.FaultAssignment{ObjectMeta: metav1.ObjectMeta{Namespace: v1alpha1.DefaultAgentNamespace, Name: node}, Spec: v1alpha1.FaultAssignmentSpec{NodeName: node}}
	for _, f := range faults {
		e := assignedExperiment(f[0])
		fa.Spec.Faults = append(fa.Spec.Faults, v1alpha1.AssignedFault{ID: f[1], Fault: "f", Type: v1alpha1.FaultMemoryPressure, Target: node,
			Experiment: v1alpha1.ExperimentRef{Namespace: e.Namespace, Name: e.Name, UID: e.UID}})
		fa.Status.Faults = append(fa.Status.Faults, v1alpha1.AssignedFaultStatus{ID: f[1], State: v1alpha1.FaultInjected})
	}
	return fa
}

func ids(fa *v1alpha1.FaultAssignment) (spec []string, recovers []bool) {
	for _, f := range fa.Spec.Faults {
		spec = append(spec, f.Experiment.Name+"/"+f.ID)
		recovers = append(recovers, f.Recover)
	}
	return spec, recovers
}

func TestOneFaultAssignmentPerNodeHoldsEveryExperimentsFaults(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	a, b := assignedExperiment("a"), assignedExperiment("b")
	tests := map[string]struct {
		existing *v1alpha1.FaultAssignment
		act      func(context.Context, *ExperimentReconciler) error
		want     []string // EXPERIMENT/ID on node n1, in order; nil: no FaultAssignment left
		recover  []bool
		// sameVersion: the object was not written
		sameVersion bool
	}{
		"the first fault on a node creates its FaultAssignment, named after it": {
			act: func(ctx context.Context, r *ExperimentReconciler) error {
				return r.writeAssignment(ctx, a, "n1", func([]v1alpha1.AssignedFault) []v1alpha1.AssignedFault {
					return []v1alpha1.AssignedFault{{ID: "a1"}}
				})
			},
			want: []string{"a/a1"}, recover: []bool{false},
		},
		"an experiment's write keeps another experiment's faults": {
			existing: nodeAssignment("n1", [2]string{"b", "b1"}, [2]string{"a", "a1"}),
			act: func(ctx context.Context, r *ExperimentReconciler) error {
				return r.writeAssignment(ctx, a, "n1", func(mine []v1alpha1.AssignedFault) []v1alpha1.AssignedFault {
					return append(mine, v1alpha1.AssignedFault{ID: "a2"})
				})
			},
			want: []string{"b/b1", "a/a1", "a/a2"}, recover: []bool{false, false, false},
		},
		"recovering an experiment marks only its own faults": {
			existing: nodeAssignment("n1", [2]string{"a", "a1"}, [2]string{"b", "b1"}),
			act: func(ctx context.Context, r *ExperimentReconciler) error {
				fas, err := r.assignments(ctx, a)
				if err != nil {
					return err
				}
				return r.recoverAll(ctx, a, fas)
			},
			want: []string{"a/a1", "b/b1"}, recover: []bool{true, false},
		},
		"a write that changes nothing keeps the order and the generation": {
			existing: nodeAssignment("n1", [2]string{"a", "a1"}, [2]string{"b", "b1"}, [2]string{"a", "a2"}),
			act: func(ctx context.Context, r *ExperimentReconciler) error {
				return r.writeAssignment(ctx, a, "n1", func(mine []v1alpha1.AssignedFault) []v1alpha1.AssignedFault {
					return []v1alpha1.AssignedFault{mine[1], mine[0]}
				})
			},
			want: []string{"a/a1", "b/b1", "a/a2"}, recover: []bool{false, false, false}, sameVersion: true,
		},
		"more faults than a node's assignment holds are refused, naming the node": {
			existing: nodeAssignment("n1", [2]string{"b", "b1"}),
			act: func(ctx context.Context, r *ExperimentReconciler) error {
				err := r.writeAssignment(ctx, a, "n1", func([]v1alpha1.AssignedFault) []v1alpha1.AssignedFault {
					out := make([]v1alpha1.AssignedFault, maxNodeFaults)
					for i := range out {
						out[i].ID = fmt.Sprintf("a%d", i)
					}
					return out
				})
				if err == nil || !strings.Contains(err.Error(), "node n1 would hold 1025 faults") {
					return fmt.Errorf("got %v, want the node's bound named", err)
				}
				return nil
			},
			want: []string{"b/b1"}, recover: []bool{false},
		},
		"taking an experiment's faults off leaves the others' in place": {
			existing: nodeAssignment("n1", [2]string{"a", "a1"}, [2]string{"b", "b1"}),
			act:      func(ctx context.Context, r *ExperimentReconciler) error { return r.deleteAssignments(ctx, a) },
			want:     []string{"b/b1"}, recover: []bool{false},
		},
		"the node's last fault taken off deletes its FaultAssignment": {
			existing: nodeAssignment("n1", [2]string{"a", "a1"}),
			act:      func(ctx context.Context, r *ExperimentReconciler) error { return r.deleteAssignments(ctx, a) },
		},
		"an experiment with nothing on the node creates nothing": {
			act: func(ctx context.Context, r *ExperimentReconciler) error {
				return r.writeAssignment(ctx, b, "n1", func([]v1alpha1.AssignedFault) []v1alpha1.AssignedFault { return nil })
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1alpha1.FaultAssignment{})
			if tc.existing != nil {
				b = b.WithObjects(tc.existing)
			}
			c := b.Build()
			r := &ExperimentReconciler{Client: c, Reader: c, Analysis: NewAnalysis(), AgentNamespace: v1alpha1.DefaultAgentNamespace}
			ctx := context.Background()
			var before v1alpha1.FaultAssignment
			_ = c.Get(ctx, client.ObjectKey{Namespace: v1alpha1.DefaultAgentNamespace, Name: "n1"}, &before)
			if err := tc.act(ctx, r); err != nil {
				t.Fatal(err)
			}
			var fa v1alpha1.FaultAssignment
			err := c.Get(ctx, client.ObjectKey{Namespace: v1alpha1.DefaultAgentNamespace, Name: "n1"}, &fa)
			if tc.want == nil {
				if !apierrors.IsNotFound(err) {
					t.Fatalf("want no FaultAssignment n1, got %v (err %v)", fa.Spec.Faults, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.sameVersion && fa.ResourceVersion != before.ResourceVersion {
				t.Errorf("resourceVersion %s, was %s: a write that changes nothing was saved", fa.ResourceVersion, before.ResourceVersion)
			}
			got, rec := ids(&fa)
			if fa.Spec.NodeName != "n1" || fa.Labels[v1alpha1.LabelNode] != "n1" && tc.existing == nil {
				t.Errorf("nodeName %q, labels %v: want both n1", fa.Spec.NodeName, fa.Labels)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("faults %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] || rec[i] != tc.recover[i] {
					t.Fatalf("faults %v recover %v, want %v recover %v", got, rec, tc.want, tc.recover)
				}
			}
		})
	}
}

func TestAnExperimentSeesOnlyItsShareOfANodesAssignment(t *testing.T) {
	fa := nodeAssignment("n1", [2]string{"a", "a1"}, [2]string{"b", "b1"}, [2]string{"a", "a2"})
	fa.Generation, fa.Status.ObservedGeneration = 3, 3
	v, ok := shareOf(fa, "uid-a")
	if !ok || len(v.Spec.Faults) != 2 || len(v.Status.Faults) != 2 || v.Spec.Faults[1].ID != "a2" || v.Status.Faults[1].ID != "a2" {
		t.Fatalf("share of a: %+v %+v", v.Spec.Faults, v.Status.Faults)
	}
	if v.Generation != 3 || v.Status.ObservedGeneration != 3 {
		t.Errorf("the share keeps the object's generations: %d/%d", v.Generation, v.Status.ObservedGeneration)
	}
	if len(fa.Spec.Faults) != 3 {
		t.Errorf("the share changed the object itself: %v", fa.Spec.Faults)
	}
	if _, ok := shareOf(fa, "uid-c"); ok {
		t.Error("an experiment with no fault on the node has a share")
	}
	reqs := experimentsOf(fa)
	if len(reqs) != 2 || reqs[0].Name != "a" || reqs[1].Name != "b" || reqs[0].Namespace != "dept" {
		t.Errorf("experiments woken: %v, want dept/a and dept/b once each", reqs)
	}
}

func TestAnExperimentIsAcknowledgedOnlyWhenEveryAgentReportedEachOfItsFaults(t *testing.T) {
	exp := assignedExperiment("a")
	rec := func(fault, target, node, action string) v1alpha1.InjectionRecord {
		return v1alpha1.InjectionRecord{Fault: fault, Target: target, Node: node, Action: action}
	}
	share := func(node string, reported bool, gen int64) v1alpha1.FaultAssignment {
		fa := nodeAssignment(node, [2]string{"a", "f-" + node})
		fa.Spec.Faults[0].Fault, fa.Spec.Faults[0].Target = "loss", node
		fa.Generation, fa.Status.ObservedGeneration = 2, gen
		if !reported {
			fa.Status.Faults = nil
		}
		return *fa
	}
	tests := map[string]struct {
		records []v1alpha1.InjectionRecord
		fas     []v1alpha1.FaultAssignment
		want    bool
	}{
		"every node's agent reported on the current generation with each fault": {
			records: []v1alpha1.InjectionRecord{rec("loss", "n1", "n1", ""), rec("loss", "n2", "n2", "")},
			fas:     []v1alpha1.FaultAssignment{share("n1", true, 2), share("n2", true, 2)}, want: true,
		},
		"a node whose assignment the cache does not show yet holds it back": {
			records: []v1alpha1.InjectionRecord{rec("loss", "n1", "n1", ""), rec("loss", "n2", "n2", "")},
			fas:     []v1alpha1.FaultAssignment{share("n1", true, 2)},
		},
		"an agent that has not reported on the current generation holds it back": {
			records: []v1alpha1.InjectionRecord{rec("loss", "n1", "n1", "")},
			fas:     []v1alpha1.FaultAssignment{share("n1", true, 1)},
		},
		"a report without the fault in it holds it back": {
			records: []v1alpha1.InjectionRecord{rec("loss", "n1", "n1", "")},
			fas:     []v1alpha1.FaultAssignment{share("n1", false, 2)},
		},
		"the controller's own actions need no agent": {
			records: []v1alpha1.InjectionRecord{rec("kill", "dept/web-1", "n3", "delete through the API with its grace period")}, want: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := exp.DeepCopy()
			e.Status.Records = tc.records
			r := &ExperimentReconciler{Analysis: NewAnalysis()}
			if got, _ := r.syncRecords(context.Background(), e, tc.fas); got != tc.want {
				t.Errorf("acknowledged %v, want %v", got, tc.want)
			}
		})
	}
}

package nodeagent

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/injectors"
	"faultline.dev/faultline/injectors/agent"
	"faultline.dev/faultline/injectors/ledger"
)

// absentID is a container ID no process of this machine's cgroups names.
const absentID = "f00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeed"

func TestDesiredForARolloutFault(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	recorded := json.RawMessage(`{"containerID":"` + absentID + `","signal":"SIGTERM","pid":4242,"startTime":99}`)
	rolloutFault := func(sig *v1alpha1.ContainerSignal) v1alpha1.AssignedFault {
		return v1alpha1.AssignedFault{ID: "f1", Type: v1alpha1.FaultRollout, Target: "ns/web-1", StartAt: metav1.NewTime(t0), Deadline: metav1.NewTime(t0.Add(time.Minute)), Signal: sig}
	}
	sig := &v1alpha1.ContainerSignal{ContainerID: "containerd://" + absentID, Container: "web", Signal: "SIGTERM"}
	tests := map[string]struct {
		fault      v1alpha1.AssignedFault
		now        time.Time
		ledger     map[string]ledger.Entry
		wantParams json.RawMessage // nil for none
		wantErr    string
	}{
		"a rollout fault without its signal is refused": {
			fault: rolloutFault(nil), now: t0, wantErr: "fault f1: signal missing",
		},
		"a rollout fault whose start has not come is not looked up yet": {
			fault: rolloutFault(sig), now: t0.Add(-time.Second),
		},
		"a rollout fault whose container is not on this node is unresolved, saying why": {
			fault: rolloutFault(sig), now: t0, wantErr: `fault f1 on pod ns/web-1, container "web": container ` + absentID + ": no process on this node",
		},
		"a rollout fault with a malformed container ID is refused, naming the field": {
			fault: rolloutFault(&v1alpha1.ContainerSignal{ContainerID: "containerd://abc", Signal: "SIGTERM"}), now: t0, wantErr: "fault f1: containerID: ",
		},
		"a rollout fault the ledger knows keeps the target it recorded, and is not looked up again": {
			fault: rolloutFault(sig), now: t0.Add(time.Second),
			ledger:     map[string]ledger.Entry{"f1": {ID: "f1", Type: "Rollout", Params: recorded, State: ledger.Injected}},
			wantParams: recorded,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			known := func(id string) (ledger.Entry, bool) { en, ok := tc.ledger[id]; return en, ok }
			d, err := desiredFor(tc.fault, tc.now, known, NodeEnv{})
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one starting %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(d.Params) != string(tc.wantParams) {
				t.Errorf("params %s, want %s", d.Params, tc.wantParams)
			}
			if d.ID != "f1" || d.Type != "Rollout" || !d.StartAt.Equal(t0) || !d.Deadline.Equal(t0.Add(time.Minute)) {
				t.Errorf("desired %+v", d)
			}
		})
	}
}

func TestTheAgentCarriesEveryFamilyItResolves(t *testing.T) {
	for _, ty := range []v1alpha1.FaultType{v1alpha1.FaultNetworkLoss, v1alpha1.FaultRollout} {
		if Factories[string(ty)] == nil {
			t.Errorf("no factory for %s", ty)
		}
	}
	f, err := Factories[string(v1alpha1.FaultRollout)]("f1", json.RawMessage(`{"containerID":"containerd://`+absentID+`","signal":"SIGKILL","pid":1,"startTime":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(injectors.Once); !ok {
		t.Error("a signal fault is not Once: a restarted agent would send it again")
	}
}

// An agent writes its assignment's status only when what it reports
// changed: the ledger's times are finer than the API server keeps, and
// compared as they are, they made every pass (each second while a fault
// is active, on every node) a write. The fake client keeps objects as
// JSON, to the second, as the API server does.
func TestAnAgentWritesItsStatusOnlyWhenItChanges(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	injected := time.Date(2026, 12, 7, 12, 0, 0, 123456789, time.UTC)
	fa := &v1alpha1.FaultAssignment{ObjectMeta: metav1.ObjectMeta{Namespace: v1alpha1.DefaultAgentNamespace, Name: "node-a", Generation: 1}, Spec: v1alpha1.FaultAssignmentSpec{
		NodeName: "node-a", Faults: []v1alpha1.AssignedFault{{ID: "f1", Type: v1alpha1.FaultNetworkLoss, Deadline: metav1.NewTime(injected.Add(time.Minute))}}}}
	writes := 0
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(fa).WithStatusSubresource(fa).WithInterceptorFuncs(interceptor.Funcs{
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			writes++
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	}).Build()
	l, err := ledger.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Put(ledger.Entry{ID: "f1", Type: string(v1alpha1.FaultNetworkLoss), State: ledger.Injected, InjectedAt: &injected, Deadline: injected.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	r := &Reconciler{Client: c, Namespace: v1alpha1.DefaultAgentNamespace, Node: "node-a", Engine: &agent.Engine{Ledger: l, Clock: clock.RealClock{}}, unresolved: map[string]string{}}
	ctx := context.Background()
	for pass := range 3 {
		var got v1alpha1.FaultAssignment
		if err := c.Get(ctx, client.ObjectKey{Namespace: v1alpha1.DefaultAgentNamespace, Name: "node-a"}, &got); err != nil {
			t.Fatal(err)
		}
		if err := r.report(ctx, &got); err != nil {
			t.Fatalf("pass %d: %v", pass, err)
		}
	}
	if writes != 1 {
		t.Errorf("%d status writes over 3 passes with nothing changed, want 1", writes)
	}
}

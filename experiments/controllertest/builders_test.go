package controllertest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	cm "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// option changes an experiment the builder makes.
type option func(*v1alpha1.Experiment)

// experiment is a one-fault NetworkLoss experiment in ns, changed by opts.
func experiment(ns string, opts ...option) *v1alpha1.Experiment {
	e := &v1alpha1.Experiment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "exp-" + rand.String(5)},
		Spec: v1alpha1.ExperimentSpec{
			Faults: []v1alpha1.Fault{{Name: "loss", Type: v1alpha1.FaultNetworkLoss, Duration: metav1.Duration{Duration: 2 * time.Second},
				NetworkLoss: &v1alpha1.NetworkLoss{LossPercent: 10}}},
		},
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

func onNodes(names ...string) option {
	return func(e *v1alpha1.Experiment) {
		e.Spec.Targets = v1alpha1.Targets{Nodes: &v1alpha1.NodeTargets{Names: names}}
	}
}

func onPods(namespaces ...string) option {
	return func(e *v1alpha1.Experiment) {
		e.Spec.Targets = v1alpha1.Targets{Pods: &cm.PodSelectorSpec{GenericSelectorSpec: cm.GenericSelectorSpec{
			Namespaces: namespaces, LabelSelectors: map[string]string{"app": "web"}}}}
	}
}

func dryRun() option { return func(e *v1alpha1.Experiment) { e.Spec.DryRun = true } }

func lasting(d time.Duration) option {
	return func(e *v1alpha1.Experiment) { e.Spec.Faults[0].Duration.Duration = d }
}

func safety(s v1alpha1.Safety) option { return func(e *v1alpha1.Experiment) { e.Spec.Safety = &s } }

func objective(expr string) option {
	return func(e *v1alpha1.Experiment) {
		e.Spec.Objectives = append(e.Spec.Objectives, v1alpha1.Objective{Name: fmt.Sprintf("objective-%d", len(e.Spec.Objectives)), Expr: expr})
	}
}

func engine(name v1alpha1.Engine) option {
	return func(e *v1alpha1.Experiment) { e.Spec.Engine = name }
}

func memory(size string) option {
	return func(e *v1alpha1.Experiment) {
		q := resource.MustParse(size)
		e.Spec.Faults[0] = v1alpha1.Fault{Name: "squeeze", Type: v1alpha1.FaultMemoryPressure, Duration: e.Spec.Faults[0].Duration,
			MemoryPressure: &v1alpha1.MemoryPressure{Size: &q, RampPerSecond: resource.MustParse("64Mi")}}
	}
}

// namespace makes a namespace, opted in to experiments when optIn, with n
// pods labelled app=web on node.
func namespace(t *testing.T, optIn bool, n int, node string) string {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns-" + rand.String(6)}}
	if optIn {
		ns.Labels = map[string]string{v1alpha1.LabelChaosEnabled: "enabled"}
	}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		pod(t, ns.Name, fmt.Sprintf("web-%d", i), node)
	}
	return ns.Name
}

// pod makes a running pod labelled app=web on node, with a container and
// a memory limit, as the kubelet would report it.
func pod(t *testing.T, ns, name, node string) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "web", Image: "web",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}}}}},
	}
	if err := k8s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "web", ContainerID: "containerd://" + rand.String(12), Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if err := k8s.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// node makes a Ready node with 8Gi of allocatable memory, once.
func node(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8s.Create(ctx, n); apierrors.IsAlreadyExists(err) {
		return
	} else if err != nil {
		t.Fatal(err)
	}
	n.Status = corev1.NodeStatus{
		Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
		Allocatable: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("8Gi")},
	}
	if err := k8s.Status().Update(ctx, n); err != nil {
		t.Fatal(err)
	}
}

// create creates the experiment and deletes it when the test ends.
func create(t *testing.T, e *v1alpha1.Experiment) {
	t.Helper()
	if err := k8s.Create(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), e) })
}

// waitFor polls until cond holds of the experiment, or fails the test
// naming what it waited for and where the experiment stood.
func waitFor(t *testing.T, e *v1alpha1.Experiment, timeout time.Duration, what string, cond func(*v1alpha1.Experiment) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := k8s.Get(context.Background(), client.ObjectKeyFromObject(e), e)
		if err == nil && cond(e) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: phase %q, message %q, err %v\ntimeline: %s", timeout, what, e.Status.Phase, e.Status.Message, err, timeline(e))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func final(e *v1alpha1.Experiment) bool { return e.Status.Phase.IsFinal() }

func timeline(e *v1alpha1.Experiment) string {
	var b strings.Builder
	for _, x := range e.Status.Timeline {
		fmt.Fprintf(&b, "\n  %s %s %s", x.Time.Format("15:04:05.000"), x.Reason, x.Message)
	}
	return b.String()
}

// choosing sets how the experiment chooses among its targets; a nil seed
// leaves the controller to draw one.
func choosing(mode v1alpha1.TargetMode, value int32, seed *int64) option {
	return func(e *v1alpha1.Experiment) {
		e.Spec.Targets.Mode, e.Spec.Targets.Seed = mode, seed
		if value != 0 {
			e.Spec.Targets.Value = &value
		}
	}
}

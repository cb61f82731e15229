package controller

import (
	"context"
	"slices"
	"testing"
	"time"

	cm "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// A fault family is one driver and its registration: this toy labels each
// target pod for its fault's window through the API, and nothing outside
// this file knows it. The phases plan it, drive it, end it on an abort and
// on a deletion, and a new controller picks it up where the old one left.

const (
	toyType  v1alpha1.FaultType = "ToyLabel"
	toyLabel string             = "faultline.dev/toy"
)

type toyDriver struct{ nothingToDo }

func (toyDriver) Drive(ctx context.Context, r *ExperimentReconciler, exp *v1alpha1.Experiment) error {
	now := r.Clock.Now()
	for _, f := range faultsOf(exp, toyDriver{}) {
		start, end := faultWindow(exp, f)
		if now.Before(start) {
			continue
		}
		for _, t := range exp.Status.Targets {
			if err := toyLabelPod(ctx, r, exp, f, t, now.Before(end)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (toyDriver) End(ctx context.Context, r *ExperimentReconciler, exp *v1alpha1.Experiment) error {
	for _, f := range faultsOf(exp, toyDriver{}) {
		for _, t := range exp.Status.Targets {
			if err := toyLabelPod(ctx, r, exp, f, t, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// toyLabelPod sets or removes the label, and records it.
func toyLabelPod(ctx context.Context, r *ExperimentReconciler, exp *v1alpha1.Experiment, f *v1alpha1.Fault, target string, on bool) error {
	ns, name := splitKey(target)
	var p corev1.Pod
	if err := r.Reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
		return client.IgnoreNotFound(err)
	}
	base := p.DeepCopy()
	rec := r.record(exp, f.Name, target)
	now := r.now()
	if on {
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		p.Labels[toyLabel] = f.Name
		if rec.InjectedAt == nil {
			rec.InjectedAt = &now
		}
	} else {
		delete(p.Labels, toyLabel)
		if rec.InjectedAt != nil && rec.RecoveredAt == nil {
			rec.RecoveredAt = &now
		}
	}
	return r.Patch(ctx, &p, client.MergeFrom(base))
}

// toyWorld is a fake cluster with one opted-in namespace and a pod, the
// toy registered, and a controller on a fake clock.
type toyWorld struct {
	c     client.WithWatch
	clock *clocktesting.FakeClock
	r     *ExperimentReconciler
}

func newToyWorld(t *testing.T) *toyWorld {
	t.Helper()
	drivers[toyType] = toyDriver{}
	v1alpha1.FaultTypes = append(v1alpha1.FaultTypes, toyType)
	t.Cleanup(func() {
		delete(drivers, toyType)
		v1alpha1.FaultTypes = slices.DeleteFunc(v1alpha1.FaultTypes, func(x v1alpha1.FaultType) bool { return x == toyType })
	})
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{v1alpha1.LabelChaosEnabled: "enabled"}}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-0", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "node-a"}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	w := &toyWorld{
		c:     fake.NewClientBuilder().WithScheme(scheme).WithObjects(ns, pod).WithStatusSubresource(&v1alpha1.Experiment{}).Build(),
		clock: clocktesting.NewFakeClock(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)),
	}
	w.restart()
	return w
}

// restart is a new controller, with nothing in memory.
func (w *toyWorld) restart() {
	a := NewAnalysis()
	a.Clock = w.clock
	w.r = &ExperimentReconciler{Client: w.c, Reader: w.c, Recorder: record.NewFakeRecorder(1000), Clock: w.clock,
		Namespace: "faultline-system", Analysis: a, RecoveryTimeout: 5 * time.Second, ReportGrace: 5 * time.Second}
}

func (w *toyWorld) experiment(t *testing.T) types.NamespacedName {
	t.Helper()
	exp := &v1alpha1.Experiment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "toy"},
		Spec: v1alpha1.ExperimentSpec{
			Targets: v1alpha1.Targets{Pods: &cm.PodSelectorSpec{GenericSelectorSpec: cm.GenericSelectorSpec{Namespaces: []string{"shop"}, LabelSelectors: map[string]string{"app": "web"}}}},
			Faults:  []v1alpha1.Fault{{Name: "mark", Type: toyType, Duration: metav1.Duration{Duration: time.Minute}}},
		},
	}
	if err := w.c.Create(context.Background(), exp); err != nil {
		t.Fatal(err)
	}
	return client.ObjectKeyFromObject(exp)
}

// pass runs one reconcile, a second later than the last.
func (w *toyWorld) pass(t *testing.T, key types.NamespacedName) *v1alpha1.Experiment {
	t.Helper()
	w.clock.Step(time.Second)
	if _, err := w.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key}); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	var exp v1alpha1.Experiment
	if err := w.c.Get(context.Background(), key, &exp); err != nil {
		return nil // gone
	}
	return &exp
}

func (w *toyWorld) labelled(t *testing.T) bool {
	t.Helper()
	var p corev1.Pod
	if err := w.c.Get(context.Background(), client.ObjectKey{Namespace: "shop", Name: "web-0"}, &p); err != nil {
		t.Fatal(err)
	}
	return p.Labels[toyLabel] == "mark"
}

// until runs passes until cond holds of the experiment (nil once gone).
func (w *toyWorld) until(t *testing.T, key types.NamespacedName, what string, cond func(*v1alpha1.Experiment) bool) *v1alpha1.Experiment {
	t.Helper()
	for range 200 {
		if exp := w.pass(t, key); cond(exp) {
			return exp
		}
	}
	var last v1alpha1.Experiment
	_ = w.c.Get(context.Background(), key, &last)
	t.Fatalf("never %s: phase %s, message %q, timeline %+v", what, last.Status.Phase, last.Status.Message, last.Status.Timeline)
	return nil
}

func TestAToyDriverRunsThroughEveryPhaseWithNoChangeOutsideItsFile(t *testing.T) {
	running := func(e *v1alpha1.Experiment) bool { return e != nil && e.Status.Phase == v1alpha1.PhaseRunning }
	injected := func(e *v1alpha1.Experiment) bool {
		return e != nil && len(e.Status.Records) == 1 && e.Status.Records[0].InjectedAt != nil
	}
	t.Run("planned, driven, and undone at its deadline", func(t *testing.T) {
		w := newToyWorld(t)
		key := w.experiment(t)
		w.until(t, key, "running", running)
		w.until(t, key, "labelled", injected)
		if !w.labelled(t) {
			t.Fatal("the pod is not labelled during the fault")
		}
		exp := w.until(t, key, "a verdict", func(e *v1alpha1.Experiment) bool { return e.Status.Phase.IsFinal() })
		if w.labelled(t) || exp.Status.Phase != v1alpha1.PhasePassed || exp.Status.Records[0].RecoveredAt == nil {
			t.Errorf("after the deadline: labelled %v, %s (%s), records %+v", w.labelled(t), exp.Status.Phase, exp.Status.Message, exp.Status.Records)
		}
	})
	t.Run("an abort undoes it at once", func(t *testing.T) {
		w := newToyWorld(t)
		key := w.experiment(t)
		exp := w.until(t, key, "labelled", injected)
		exp.Annotations = map[string]string{v1alpha1.AnnotationAbort: "true"}
		if err := w.c.Update(context.Background(), exp); err != nil {
			t.Fatal(err)
		}
		exp = w.pass(t, key)
		if w.labelled(t) || exp.Status.Phase != v1alpha1.PhaseRecovering {
			t.Fatalf("after the abort: labelled %v, phase %s", w.labelled(t), exp.Status.Phase)
		}
		exp = w.until(t, key, "a verdict", func(e *v1alpha1.Experiment) bool { return e.Status.Phase.IsFinal() })
		if exp.Status.Phase != v1alpha1.PhaseAborted {
			t.Errorf("phase %s (%s), want Aborted", exp.Status.Phase, exp.Status.Message)
		}
	})
	t.Run("a deletion undoes it before the finalizer lets go", func(t *testing.T) {
		w := newToyWorld(t)
		key := w.experiment(t)
		exp := w.until(t, key, "labelled", injected)
		if err := w.c.Delete(context.Background(), exp); err != nil {
			t.Fatal(err)
		}
		w.until(t, key, "gone", func(e *v1alpha1.Experiment) bool { return e == nil })
		if w.labelled(t) {
			t.Error("the pod is still labelled after the experiment is gone")
		}
	})
	t.Run("a new controller takes up where the old one left", func(t *testing.T) {
		w := newToyWorld(t)
		key := w.experiment(t)
		w.until(t, key, "labelled", injected)
		w.restart()
		exp := w.until(t, key, "a verdict", func(e *v1alpha1.Experiment) bool { return e.Status.Phase.IsFinal() })
		if w.labelled(t) || exp.Status.Phase != v1alpha1.PhasePassed {
			t.Errorf("after the restart: labelled %v, %s (%s)", w.labelled(t), exp.Status.Phase, exp.Status.Message)
		}
	})
}

package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	cm "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// podKillWorld is a fake cluster with n running pods labelled app=web in
// an opted-in namespace, and a controller on a fake clock. A pod deleted
// through the fake client is gone at once, as one whose kubelet is done.
type podKillWorld struct {
	c     client.WithWatch
	clock *clocktesting.FakeClock
	r     *ExperimentReconciler
}

func newPodKillWorld(t *testing.T, n int) *podKillWorld {
	t.Helper()
	objs := []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{v1alpha1.LabelChaosEnabled: "enabled"}}}}
	for i := range n {
		objs = append(objs, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: fmt.Sprintf("web-%d", i), UID: types.UID(fmt.Sprintf("uid-%d", i)), Labels: map[string]string{"app": "web"}},
			Spec:       corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "web"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
				ContainerStatuses: []corev1.ContainerStatus{{Name: "web", ContainerID: fmt.Sprintf("containerd://c%d", i), State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
		})
	}
	w := &podKillWorld{
		c: fake.NewClientBuilder().WithScheme(chaosScheme(t)).WithObjects(objs...).
			WithStatusSubresource(&v1alpha1.Experiment{}, &v1alpha1.FaultAssignment{}).Build(),
		clock: clocktesting.NewFakeClock(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)),
	}
	a := NewAnalysis()
	a.Clock = w.clock
	w.r = &ExperimentReconciler{Client: w.c, Reader: w.c, Recorder: record.NewFakeRecorder(1000), Clock: w.clock,
		Namespace: "faultline-system", AgentNamespace: v1alpha1.DefaultAgentNamespace, Analysis: a, RecoveryTimeout: 5 * time.Second, ReportGrace: 5 * time.Second}
	return w
}

func (w *podKillWorld) experiment(t *testing.T, d time.Duration, k v1alpha1.PodKill, set func(*v1alpha1.Targets)) types.NamespacedName {
	t.Helper()
	exp := &v1alpha1.Experiment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "kill"},
		Spec: v1alpha1.ExperimentSpec{
			Targets: v1alpha1.Targets{Pods: &cm.PodSelectorSpec{GenericSelectorSpec: cm.GenericSelectorSpec{Namespaces: []string{"shop"}, LabelSelectors: map[string]string{"app": "web"}}}},
			Faults:  []v1alpha1.Fault{{Name: "kill", Type: v1alpha1.FaultPodKill, Duration: metav1.Duration{Duration: d}, PodKill: &k}},
		},
	}
	if set != nil {
		set(&exp.Spec.Targets)
	}
	if err := w.c.Create(context.Background(), exp); err != nil {
		t.Fatal(err)
	}
	return client.ObjectKeyFromObject(exp)
}

// run reconciles once a second until the experiment has a verdict.
func (w *podKillWorld) run(t *testing.T, key types.NamespacedName) *v1alpha1.Experiment {
	t.Helper()
	var exp v1alpha1.Experiment
	for range 300 {
		w.clock.Step(time.Second)
		if _, err := w.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key}); err != nil {
			t.Fatalf("reconcile: %v", err)
		}
		if err := w.c.Get(context.Background(), key, &exp); err != nil {
			t.Fatal(err)
		}
		if exp.Status.Phase.IsFinal() {
			return &exp
		}
	}
	t.Fatalf("no verdict: phase %s, message %q", exp.Status.Phase, exp.Status.Message)
	return nil
}

func (w *podKillWorld) pods(t *testing.T) int {
	t.Helper()
	var pods corev1.PodList
	if err := w.c.List(context.Background(), &pods); err != nil {
		t.Fatal(err)
	}
	return len(pods.Items)
}

func TestAPodKillKillsEachRoundAmongThePodsThatMatchThen(t *testing.T) {
	zero := ptr.To[int64](0)
	tests := map[string]struct {
		pods     int
		duration time.Duration
		kill     v1alpha1.PodKill
		targets  func(*v1alpha1.Targets)
		// wantRounds, and the pods killed in each.
		wantRounds int32
		wantKills  []int
		wantLeft   int
	}{
		"fixed-percent 50 over 10 pods kills 5, once": {
			pods: 10, duration: 20 * time.Second, kill: v1alpha1.PodKill{Method: "Delete", GracePeriodSeconds: zero},
			targets:    func(t *v1alpha1.Targets) { t.Mode, t.Value = v1alpha1.TargetModeFixedPercent, ptr.To[int32](50) },
			wantRounds: 1, wantKills: []int{5}, wantLeft: 5,
		},
		"one pod every 10 s for 45 s is five kills, at 0, 10, 20, 30 and 40 s": {
			pods: 8, duration: 45 * time.Second, kill: v1alpha1.PodKill{Method: "Delete", GracePeriodSeconds: zero, Interval: &metav1.Duration{Duration: 10 * time.Second}},
			targets:    func(t *v1alpha1.Targets) { t.Mode = v1alpha1.TargetModeOne },
			wantRounds: 5, wantKills: []int{1, 1, 1, 1, 1}, wantLeft: 3,
		},
		"each round chooses anew among the pods left": {
			pods: 8, duration: 25 * time.Second, kill: v1alpha1.PodKill{Method: "Delete", GracePeriodSeconds: zero, Interval: &metav1.Duration{Duration: 10 * time.Second}},
			targets:    func(t *v1alpha1.Targets) { t.Mode, t.Value = v1alpha1.TargetModeFixedPercent, ptr.To[int32](50) },
			wantRounds: 3, wantKills: []int{4, 2, 1}, wantLeft: 1,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			w := newPodKillWorld(t, tc.pods)
			exp := w.run(t, w.experiment(t, tc.duration, tc.kill, tc.targets))
			if len(exp.Status.PodKills) != 1 || exp.Status.PodKills[0].Round != tc.wantRounds || !exp.Status.PodKills[0].Done {
				t.Fatalf("rounds %+v, want %d, the last done", exp.Status.PodKills, tc.wantRounds)
			}
			kills := make([]int, tc.wantRounds)
			seen := map[string]bool{}
			for _, rec := range exp.Status.Records {
				if rec.Round < 1 || rec.Round > tc.wantRounds || rec.InjectedAt == nil || rec.Node != "node-a" || !strings.HasPrefix(rec.Action, "delete through the API with grace 0s") {
					t.Errorf("record %+v: want a round, the node, the time and the method", rec)
					continue
				}
				kills[rec.Round-1]++
				if seen[rec.Target] {
					t.Errorf("%s killed twice: deleted pods are not candidates again", rec.Target)
				}
				seen[rec.Target] = true
			}
			if fmt.Sprint(kills) != fmt.Sprint(tc.wantKills) {
				t.Errorf("kills by round %v, want %v", kills, tc.wantKills)
			}
			if left := w.pods(t); left != tc.wantLeft {
				t.Errorf("%d pods left, want %d", left, tc.wantLeft)
			}
			if exp.Status.Phase != v1alpha1.PhasePassed {
				t.Errorf("phase %s (%s), want Passed: every round killed", exp.Status.Phase, exp.Status.Message)
			}
		})
	}
}

func TestAPodKillBySignalGoesToTheNodesAgentOncePerPodAndRound(t *testing.T) {
	w := newPodKillWorld(t, 2)
	key := w.experiment(t, 15*time.Second, v1alpha1.PodKill{Method: "Signal", Signal: "SIGTERM", Interval: &metav1.Duration{Duration: 10 * time.Second}},
		func(t *v1alpha1.Targets) { t.Mode, t.Seed = v1alpha1.TargetModeAll, ptr.To[int64](3) })
	// The agent never reports, so the experiment does not end: drive the
	// passes by hand through both rounds.
	for range 20 {
		w.clock.Step(time.Second)
		if _, err := w.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key}); err != nil {
			t.Fatalf("reconcile: %v", err)
		}
	}
	var fa v1alpha1.FaultAssignment
	if err := w.c.Get(context.Background(), client.ObjectKey{Namespace: v1alpha1.DefaultAgentNamespace, Name: "node-a"}, &fa); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	rounds := map[int32]int{}
	for _, af := range fa.Spec.Faults {
		if af.Signal == nil || af.Signal.Signal != "SIGTERM" || af.Type != v1alpha1.FaultPodKill {
			t.Errorf("assigned %+v, want SIGTERM by PodKill", af)
		}
		ids[af.ID] = true
		rounds[af.Round]++
	}
	if len(fa.Spec.Faults) != 4 || len(ids) != 4 || rounds[1] != 2 || rounds[2] != 2 {
		t.Errorf("%d assigned signals, %d IDs, by round %v: want both pods once in each of two rounds", len(fa.Spec.Faults), len(ids), rounds)
	}
	var exp v1alpha1.Experiment
	if err := w.c.Get(context.Background(), key, &exp); err != nil {
		t.Fatal(err)
	}
	if n := len(exp.Status.Records); n != 4 {
		t.Errorf("%d records, want one per pod and round: %+v", n, exp.Status.Records)
	}
	if w.pods(t) != 2 {
		t.Error("a signal deleted a pod")
	}
}

// A round whose kills were made but whose status write was lost is done
// again from the choice written before them: the pods it killed are not
// superseded, and no other pod is killed in their place. A pod made anew
// under a chosen name (a StatefulSet's) is not the one chosen.
func TestARoundRetriedAfterALostWriteKillsNoOtherPod(t *testing.T) {
	w := newPodKillWorld(t, 4)
	key := w.experiment(t, time.Minute, v1alpha1.PodKill{Method: "Delete", GracePeriodSeconds: ptr.To[int64](0)},
		func(t *v1alpha1.Targets) { t.Mode, t.Value = v1alpha1.TargetModeFixed, ptr.To[int32](2) })
	ctx := context.Background()
	var exp v1alpha1.Experiment
	if err := w.c.Get(ctx, key, &exp); err != nil {
		t.Fatal(err)
	}
	start := metav1.NewTime(w.clock.Now())
	exp.Status.StartTime = &start
	exp.Status.Targets = []string{"shop/web-1", "shop/web-2"}
	if err := w.c.Status().Update(ctx, &exp); err != nil {
		t.Fatal(err)
	}
	f := &exp.Spec.Faults[0]
	end := start.Add(time.Minute)
	if err := w.r.podKillRound(ctx, &exp, f, 1, end); err != nil {
		t.Fatal(err)
	}
	if w.pods(t) != 2 || len(exp.Status.Records) != 2 {
		t.Fatalf("%d pods left, records %+v: want web-1 and web-2 killed", w.pods(t), exp.Status.Records)
	}
	// The write after the kills is lost: the next pass reads the choice,
	// written before them, and nothing else.
	var again v1alpha1.Experiment
	if err := w.c.Get(ctx, key, &again); err != nil {
		t.Fatal(err)
	}
	if len(again.Status.Records) != 0 || len(again.Status.PodKills) != 1 || again.Status.PodKills[0].Done {
		t.Fatalf("stored status %+v: want the choice only", again.Status)
	}
	// A pod made anew under one of the chosen names.
	if err := w.c.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-2", UID: "uid-new", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "node-a"}}); err != nil {
		t.Fatal(err)
	}
	if err := w.r.podKillRound(ctx, &again, &again.Spec.Faults[0], 1, end); err != nil {
		t.Fatal(err)
	}
	if w.pods(t) != 3 {
		t.Errorf("%d pods, want 3: web-0, web-3 and the new web-2 untouched", w.pods(t))
	}
	if len(again.Status.Records) != 2 || !again.Status.PodKills[0].Done {
		t.Fatalf("records %+v, round %+v", again.Status.Records, again.Status.PodKills)
	}
	for _, rec := range again.Status.Records {
		if rec.Superseded != "" || !strings.HasPrefix(rec.Action, "gone before this pass") || rec.InjectedAt == nil {
			t.Errorf("record %+v: want the kill counted as the earlier pass's", rec)
		}
	}
	if missed := (podKillDriver{}).Missed(&again); len(missed) != 0 {
		t.Errorf("missed %v: the round's kills were made", missed)
	}
}

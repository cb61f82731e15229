package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	cm "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	fakediscovery "k8s.io/client-go/discovery/fake"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clienttesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/chaosmesh"
)

func chaosScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, cm.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// chaosExperiment is a 30-second MemoryPressure of pod dept/web-1 under
// engine chaos-mesh, started at start.
func chaosExperiment(start time.Time) *v1alpha1.Experiment {
	size := resource.MustParse("64Mi")
	st := metav1.NewTime(start)
	return &v1alpha1.Experiment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "dept", Name: "squeeze", UID: "exp-1", Finalizers: []string{v1alpha1.Finalizer}},
		Spec: v1alpha1.ExperimentSpec{
			Engine: v1alpha1.EngineChaosMesh,
			Targets: v1alpha1.Targets{Pods: &cm.PodSelectorSpec{GenericSelectorSpec: cm.GenericSelectorSpec{
				Namespaces: []string{"dept"}, LabelSelectors: map[string]string{"app": "web"}}}},
			Faults: []v1alpha1.Fault{{Name: "mem", Type: v1alpha1.FaultMemoryPressure, Duration: metav1.Duration{Duration: 30 * time.Second},
				MemoryPressure: &v1alpha1.MemoryPressure{Size: &size, RampPerSecond: resource.MustParse("64Mi")}}},
		},
		Status: v1alpha1.ExperimentStatus{Phase: v1alpha1.PhaseRunning, StartTime: &st, Targets: []string{"dept/web-1"}},
	}
}

func webPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "dept", Name: "web-1", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "app", Resources: corev1.ResourceRequirements{
			Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

// stressChaos is the object the controller made for chaosExperiment, with
// what Chaos Mesh would report once it injected the one container.
func stressChaos(injected bool) *cm.StressChaos {
	s := &cm.StressChaos{ObjectMeta: metav1.ObjectMeta{Namespace: "dept", Name: "squeeze-mem",
		Labels: map[string]string{v1alpha1.LabelExperiment: "exp-1", v1alpha1.LabelFault: "mem"}}}
	if injected {
		s.Status.Conditions = []cm.ChaosCondition{{Type: cm.ConditionSelected, Status: corev1.ConditionTrue}, {Type: cm.ConditionAllInjected, Status: corev1.ConditionTrue}}
		s.Status.Experiment = cm.ExperimentStatus{DesiredPhase: cm.RunningPhase, Records: []*cm.Record{{Id: "dept/web-1/app", Phase: cm.Injected, InjectedCount: 1}}}
	}
	return s
}

// foreign makes the object an earlier experiment's of the same name.
func foreign(s *cm.StressChaos) *cm.StressChaos {
	s.Labels[v1alpha1.LabelExperiment] = "exp-0"
	return s
}

func TestUnderChaosMeshEachFaultIsOneObjectFromItsStartToItsDeadline(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		object   *cm.StressChaos
		created  bool           // the record says the object was created
		phase    v1alpha1.Phase // when not Running
		abort    bool
		deleted  bool          // the experiment is being deleted
		at       time.Duration // clock after the start
		run      string        // drive (hold's step), hold, reconcile
		want     bool          // the object exists afterwards
		duration string        // its spec.duration, when it exists
		record   string        // in the record's action, effect or error
		injected bool          // the record's InjectedAt set
	}{
		"before its start nothing is created": {at: -time.Second, run: "drive"},
		"at its start the StressChaos is created, labelled and owned, for the fault's duration": {at: 400 * time.Millisecond, run: "drive", want: true, duration: "30s",
			record: "create StressChaos dept/squeeze-mem with duration 30s"},
		"created 1.5s late it lasts what is left, rounded up to the second": {at: 1500 * time.Millisecond, run: "drive", want: true, duration: "29s",
			record: "created 1.5s after the fault's start, shortened from 30s"},
		"created late, after a restart, it lasts only what is left of the fault": {at: 20 * time.Second, run: "drive", want: true, duration: "10s",
			record: "created 20s after the fault's start, shortened from 30s"},
		"an object that exists is not created again, and what Chaos Mesh did is recorded": {object: stressChaos(true), created: true, at: 10 * time.Second, run: "drive", want: true,
			record: "Chaos Mesh injected into 1 of 1 containers (Selected, AllInjected)", injected: true},
		"an object someone else deleted mid-fault is not created again": {created: true, at: 10 * time.Second, run: "drive",
			record: "deleted before the deadline, not by faultline"},
		"an object created before a lost status write is adopted, not taken for one someone deleted": {object: stressChaos(true), at: 10 * time.Second, run: "drive", want: true,
			record: "adopted StressChaos dept/squeeze-mem, created before a lost status write", injected: true},
		"another experiment's object of the same name is neither judged nor deleted": {object: foreign(stressChaos(true)), at: 10 * time.Second, run: "drive", want: true,
			record: "belongs to another experiment (faultline.dev/experiment-uid=exp-0)"},
		"at its deadline it is deleted":                                      {object: stressChaos(false), created: true, at: 30 * time.Second, run: "drive"},
		"an abort deletes it before the deadline":                            {object: stressChaos(false), created: true, abort: true, at: 10 * time.Second, run: "hold"},
		"deleting the experiment deletes it before the finalizer goes":       {object: stressChaos(false), created: true, deleted: true, at: 10 * time.Second, run: "reconcile"},
		"a finished experiment's leftover, as a crash leaves it, is deleted": {object: stressChaos(false), created: true, phase: v1alpha1.PhasePassed, at: time.Minute, run: "reconcile"},
	}
	scheme := chaosScheme(t)
	ctx := context.Background()
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			exp := chaosExperiment(t0)
			if tc.phase != "" {
				exp.Status.Phase = tc.phase
			}
			if tc.abort {
				exp.Annotations = map[string]string{v1alpha1.AnnotationAbort: "true"}
			}
			if tc.deleted {
				now := metav1.NewTime(t0)
				exp.DeletionTimestamp = &now
			}
			if tc.created {
				exp.Status.Records = []v1alpha1.InjectionRecord{{Fault: "mem", Target: "StressChaos dept/squeeze-mem", Action: "create StressChaos dept/squeeze-mem with duration 30s"}}
			}
			b := fake.NewClientBuilder().WithScheme(scheme).WithObjects(webPod(), exp).WithStatusSubresource(exp)
			if tc.object != nil {
				b = b.WithObjects(tc.object)
			}
			c := b.Build()
			r := &ExperimentReconciler{Client: c, Reader: c, Clock: clocktesting.NewFakeClock(t0.Add(tc.at)), Analysis: NewAnalysis(), Namespace: "faultline-system"}
			var err error
			switch tc.run {
			case "drive":
				err = r.driveChaosMesh(ctx, exp)
			case "hold":
				_, err = r.hold(ctx, exp)
				if exp.Status.Phase != v1alpha1.PhaseRecovering {
					t.Errorf("phase %s after the abort, want Recovering", exp.Status.Phase)
				}
			case "reconcile":
				_, err = r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(exp)})
			}
			if err != nil {
				t.Fatal(err)
			}
			var got cm.StressChaos
			err = c.Get(ctx, client.ObjectKey{Namespace: "dept", Name: "squeeze-mem"}, &got)
			if exists := err == nil; exists != tc.want {
				t.Fatalf("object exists: %v (%v), want %v", exists, err, tc.want)
			}
			if tc.want && tc.duration != "" {
				if got.Spec.Duration == nil || *got.Spec.Duration != tc.duration {
					t.Errorf("spec.duration %v, want %s", got.Spec.Duration, tc.duration)
				}
				if got.Labels[v1alpha1.LabelExperiment] != "exp-1" || got.Labels[v1alpha1.LabelFault] != "mem" {
					t.Errorf("labels %v, want the experiment's UID and the fault", got.Labels)
				}
				if len(got.OwnerReferences) != 1 || got.OwnerReferences[0].UID != "exp-1" {
					t.Errorf("owners %+v, want the experiment", got.OwnerReferences)
				}
				if sel := got.Spec.Selector.Pods; len(sel["dept"]) != 1 || sel["dept"][0] != "web-1" {
					t.Errorf("selected pods %v, want dept/web-1", sel)
				}
				if m := got.Spec.Stressors.MemoryStressor; m == nil || m.Size != "67108864B" {
					t.Errorf("memory stressor %+v, want 64Mi in bytes", m)
				}
			}
			if tc.deleted {
				var e v1alpha1.Experiment
				if err := c.Get(ctx, client.ObjectKeyFromObject(exp), &e); !apierrors.IsNotFound(err) {
					t.Errorf("experiment still there (%v, finalizers %v): the finalizer should have gone after the object", err, e.Finalizers)
				}
			}
			if tc.at < 0 {
				if len(exp.Status.Records) != 0 {
					t.Errorf("records %+v before the start", exp.Status.Records)
				}
				return
			}
			if tc.record != "" {
				if len(exp.Status.Records) != 1 {
					t.Fatalf("records %+v, want one", exp.Status.Records)
				}
				rec := exp.Status.Records[0]
				if all := rec.Action + " " + rec.Effect + " " + rec.Error; !strings.Contains(all, tc.record) {
					t.Errorf("record %+v, want %q in it", rec, tc.record)
				}
				if (rec.InjectedAt != nil) != tc.injected {
					t.Errorf("record %+v, want injected: %v", rec, tc.injected)
				}
			}
		})
	}
}

func TestUnderChaosMeshPlanNeedsItsCRDs(t *testing.T) {
	stress := []metav1.APIResource{{Name: "stresschaos", Kind: cm.KindStressChaos}, {Name: "networkchaos", Kind: cm.KindNetworkChaos},
		{Name: "iochaos", Kind: cm.KindIOChaos}, {Name: "podchaos", Kind: cm.KindPodChaos}}
	tests := map[string]struct {
		resources []*metav1.APIResourceList
		phase     v1alpha1.Phase
		message   string
	}{
		"without Chaos Mesh's CRDs the experiment ends in Error naming spec.engine": {phase: v1alpha1.PhaseError,
			message: "spec.engine: chaos-mesh needs Chaos Mesh's CRDs (networkchaos.chaos-mesh.org, iochaos.chaos-mesh.org, stresschaos.chaos-mesh.org, podchaos.chaos-mesh.org) and they are not installed"},
		"with one CRD missing it names that one": {resources: []*metav1.APIResourceList{{GroupVersion: cm.SchemeGroupVersion.String(), APIResources: stress[:3]}}, phase: v1alpha1.PhaseError,
			message: "(podchaos.chaos-mesh.org) and they are not installed; install Chaos Mesh or use engine: faultline"},
		"with them it plans one record per fault and writes no FaultAssignment": {resources: []*metav1.APIResourceList{{GroupVersion: cm.SchemeGroupVersion.String(), APIResources: stress}}, phase: v1alpha1.PhaseInjecting},
	}
	scheme := chaosScheme(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			exp := chaosExperiment(t0)
			exp.Status = v1alpha1.ExperimentStatus{}
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dept", Labels: map[string]string{v1alpha1.LabelChaosEnabled: "enabled"}}}
			c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(webPod(), ns, exp).Build()
			disc := &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{Resources: tc.resources}}
			r := &ExperimentReconciler{Client: c, Reader: c, Clock: clocktesting.NewFakeClock(t0), Analysis: NewAnalysis(), Namespace: "faultline-system", Discovery: disc}
			if _, err := r.plan(ctx, exp); err != nil {
				t.Fatal(err)
			}
			if exp.Status.Phase != tc.phase || !strings.Contains(exp.Status.Message, tc.message) {
				t.Fatalf("phase %s, message %q; want %s with %q", exp.Status.Phase, exp.Status.Message, tc.phase, tc.message)
			}
			if tc.phase == v1alpha1.PhaseError {
				if exp.Status.Verdict != v1alpha1.VerdictError {
					t.Errorf("verdict %s, want Error", exp.Status.Verdict)
				}
				if n := len(exp.Status.Timeline); n == 0 || exp.Status.Timeline[n-1].Reason != "EngineUnavailable" {
					t.Errorf("timeline %+v, want EngineUnavailable last", exp.Status.Timeline)
				}
				return
			}
			if len(exp.Status.Records) != 1 || exp.Status.Records[0].Target != "StressChaos dept/squeeze-mem" {
				t.Errorf("records %+v, want one for StressChaos dept/squeeze-mem", exp.Status.Records)
			}
			var fas v1alpha1.FaultAssignmentList
			if err := c.List(ctx, &fas); err != nil || len(fas.Items) != 0 {
				t.Errorf("FaultAssignments %d (%v), want none", len(fas.Items), err)
			}
			if _, err := chaosmesh.MissingCRDs(disc); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestUnderChaosMeshARolloutsActionIsAPodChaosOnThePodsOfItsPoint(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ready := []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	yes := true
	pod := func(name, rs string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "dept", Name: name, OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs, UID: types.UID(rs), Controller: &yes}}},
			Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "app"}}},
			Status:     corev1.PodStatus{Conditions: ready},
		}
	}
	grace := int64(7)
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "dept", Name: "web"},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{TerminationGracePeriodSeconds: &grace, Containers: []corev1.Container{{Name: "app"}}}}}}
	newRS := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "dept", Name: "web-new", UID: "web-new"}}
	oldRS := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "dept", Name: "web-old", UID: "web-old"}}
	tests := map[string]struct {
		action v1alpha1.RolloutAction
		// wantPods are the names the chosen pods start with.
		wantPods []string
		wantKill cm.PodChaosAction
	}{
		"delete of the new pod is a pod-kill of exactly it, with the pods' grace period": {action: v1alpha1.RolloutAction{Pods: "New", Method: "Delete"},
			wantPods: []string{"web-new-1"}, wantKill: cm.PodKillAction},
		"SIGKILL to two old pods of three is a container-kill of the two chosen": {action: v1alpha1.RolloutAction{Pods: "Old", Count: 2, Signal: "SIGKILL"},
			wantPods: []string{"web-old-", "web-old-"}, wantKill: cm.ContainerKillAction},
	}
	ctx := context.Background()
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st := metav1.NewTime(t0)
			exp := &v1alpha1.Experiment{
				ObjectMeta: metav1.ObjectMeta{Namespace: "dept", Name: "roll", UID: "exp-1"},
				Spec: v1alpha1.ExperimentSpec{Engine: v1alpha1.EngineChaosMesh, Targets: v1alpha1.Targets{Deployment: "web"},
					Faults: []v1alpha1.Fault{{Name: "kill", Type: v1alpha1.FaultRollout, Duration: metav1.Duration{Duration: time.Minute},
						Rollout: &v1alpha1.Rollout{Action: &tc.action}}}},
				Status: v1alpha1.ExperimentStatus{StartTime: &st},
			}
			// act writes its choice of pods with the status before acting.
			c := fake.NewClientBuilder().WithScheme(chaosScheme(t)).WithObjects(dep, exp,
				pod("web-new-1", "web-new"), pod("web-old-1", "web-old"), pod("web-old-2", "web-old"), pod("web-old-3", "web-old")).
				WithStatusSubresource(&v1alpha1.Experiment{}).Build()
			r := &ExperimentReconciler{Client: c, Reader: c, Clock: clocktesting.NewFakeClock(t0.Add(5 * time.Second))}
			f := &exp.Spec.Faults[0]
			rec := rolloutRecord(exp, f)
			if err := r.act(ctx, exp, f, rec, newRS, []*appsv1.ReplicaSet{oldRS}, t0.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			var pc cm.PodChaos
			if err := c.Get(ctx, client.ObjectKey{Namespace: "dept", Name: "roll-kill"}, &pc); err != nil {
				t.Fatalf("no PodChaos: %v; records %+v", err, exp.Status.Records)
			}
			// Exactly the pods chosen, at random among the candidates.
			got := pc.Spec.Selector.Pods["dept"]
			var chosen []string
			for _, key := range rec.Chosen {
				chosen = append(chosen, strings.TrimPrefix(key, "dept/"))
			}
			if strings.Join(got, ",") != strings.Join(chosen, ",") || len(got) != len(tc.wantPods) || pc.Spec.Action != tc.wantKill {
				t.Errorf("PodChaos on %v with %s, want the %d chosen (%v) with %s", got, pc.Spec.Action, len(tc.wantPods), chosen, tc.wantKill)
			}
			for i := range got {
				if i < len(tc.wantPods) && !strings.HasPrefix(got[i], tc.wantPods[i]) {
					t.Errorf("pod %s, want one of %s*", got[i], tc.wantPods[i])
				}
			}
			if tc.wantKill == cm.PodKillAction && pc.Spec.GracePeriod != grace {
				t.Errorf("grace period %d, want the pods' %d", pc.Spec.GracePeriod, grace)
			}
			if *pc.Spec.Duration != "55s" {
				t.Errorf("spec.duration %s, want the 55s left of the fault", *pc.Spec.Duration)
			}
			var pods corev1.PodList
			if err := c.List(ctx, &pods); err != nil || len(pods.Items) != 4 {
				t.Errorf("%d pods (%v), want all 4: Chaos Mesh acts, not faultline", len(pods.Items), err)
			}
			var fas v1alpha1.FaultAssignmentList
			if err := c.List(ctx, &fas); err != nil || len(fas.Items) != 0 {
				t.Errorf("%d FaultAssignments (%v), want none", len(fas.Items), err)
			}
			if rec.PointAt == nil || len(exp.Status.Records) != 1 || exp.Status.Records[0].Target != "PodChaos dept/roll-kill" {
				t.Errorf("point %v, records %+v; want the point reached and one record for the PodChaos", rec.PointAt, exp.Status.Records)
			}
		})
	}
}

func TestOnlyErrorsThatWaitingCanCureAreTriedAgain(t *testing.T) {
	gr := schema.GroupResource{Resource: "pods"}
	tests := map[string]struct {
		err  error
		want bool
	}{
		"no error":                      {nil, false},
		"the API server timing out":     {apierrors.NewServerTimeout(gr, "get", 1), true},
		"too many requests":             {apierrors.NewTooManyRequests("slow down", 1), true},
		"the API server out of service": {apierrors.NewServiceUnavailable("etcd is slow"), true},
		"a dial that failed, wrapped":   {fmt.Errorf("pod dept/web-1: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")}), true},
		"a target pod that is gone":     {fmt.Errorf("spec.faults[0].diskLatency.pathPrefix: pod dept/web-1: %w", apierrors.NewNotFound(gr, "web-1")), false},
		"a refusal":                     {apierrors.NewForbidden(gr, "web-1", errors.New("no")), false},
		"a spec Chaos Mesh cannot take": {errors.New("spec.faults[0].diskLatency.pathPrefix: \"/data\" is in no volume mounted"), false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := transient(tc.err); got != tc.want {
				t.Errorf("transient(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestTheEngineAcknowledgesOnceEveryStartedFaultHasItsObjectOrItsError(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		at         time.Duration
		records    []v1alpha1.InjectionRecord
		wantDone   bool
		wantFailed []string
	}{
		"before the fault starts nothing is acknowledged": {at: -time.Second},
		"a started fault with no record yet is not":       {at: time.Second},
		"a created object acknowledges it": {at: time.Second, wantDone: true,
			records: []v1alpha1.InjectionRecord{{Fault: "mem", Action: "created StressChaos dept/squeeze-mem"}}},
		"a failed creation acknowledges it too, and is named as failed, not created": {at: time.Second, wantDone: true, wantFailed: []string{"mem"},
			records: []v1alpha1.InjectionRecord{{Fault: "mem", Error: "admission webhook refused it"}}},
		"an object created after a failed attempt counts as created": {at: time.Second, wantDone: true,
			records: []v1alpha1.InjectionRecord{{Fault: "mem", Action: "created StressChaos dept/squeeze-mem", Error: "a first attempt timed out"}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			exp := chaosExperiment(t0)
			exp.Status.Records = tc.records
			done, failed := chaosCreated(exp, t0.Add(tc.at))
			if done != tc.wantDone || strings.Join(failed, ",") != strings.Join(tc.wantFailed, ",") {
				t.Errorf("done %v failed %v, want %v %v", done, failed, tc.wantDone, tc.wantFailed)
			}
		})
	}
}

package controllertest

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// Every safety rule, as the controller applies it before anything is
// injected: refusals end the experiment in Error naming the field and
// what to do; caps keep a dry run's targets within bounds.
func TestTheSafetyRulesDecideWhatAnExperimentMayTouch(t *testing.T) {
	node(t, "node-a")
	node(t, "node-b")
	open := namespace(t, true, 4, "node-a")
	closed := namespace(t, false, 4, "node-a")
	pod(t, "kube-system", "web-0", "node-a")
	pod(t, Namespace, "web-0", "node-a")
	tests := map[string]struct {
		exp         *v1alpha1.Experiment
		wantPhase   v1alpha1.Phase
		wantReason  string
		wantMessage []string
		// wantTargets, when set, is how many targets the status lists;
		// wantSeed, whether it records the seed they were chosen with.
		wantTargets int
		wantSeed    bool
	}{
		"a namespace without the opt-in label is refused, saying how to opt in": {
			exp: experiment("default", onPods(closed)), wantPhase: v1alpha1.PhaseError, wantReason: v1alpha1.ReasonRefused,
			wantMessage: []string{`namespace "` + closed + `" has not opted in`, "kubectl label namespace " + closed + " faultline.dev/chaos=enabled"},
		},
		"kube-system is refused unless explicitly allowed": {
			exp: experiment("default", onPods("kube-system")), wantPhase: v1alpha1.PhaseError, wantReason: v1alpha1.ReasonRefused,
			wantMessage: []string{`"kube-system" is a system namespace`, "spec.safety.allowSystemNamespaces"},
		},
		"faultline's own namespace is refused unless explicitly allowed": {
			exp: experiment("default", onPods(Namespace)), wantPhase: v1alpha1.PhaseError, wantReason: v1alpha1.ReasonRefused,
			wantMessage: []string{`"` + Namespace + `" is a system namespace`},
		},
		"pods that match nothing are refused": {
			exp:       experiment("default", onPods(open), func(e *v1alpha1.Experiment) { e.Spec.Targets.Pods.LabelSelectors = map[string]string{"app": "nothing"} }),
			wantPhase: v1alpha1.PhaseError, wantReason: v1alpha1.ReasonRefused, wantMessage: []string{"spec.targets: matches nothing"},
		},
		"maxTargets keeps that many of the targets, chosen at random, and records the seed (dry run)": {
			exp: experiment("default", onPods(open), dryRun(), safety(v1alpha1.Safety{MaxTargets: ptr.To[int32](2)})), wantPhase: v1alpha1.PhasePassed,
			wantMessage: []string{"dry run: would inject 1 fault(s) into " + open + "/web-"}, wantTargets: 2, wantSeed: true,
		},
		"maxTargetPercent caps them as a share of the candidates (dry run)": {
			exp: experiment("default", onPods(open), dryRun(), safety(v1alpha1.Safety{MaxTargetPercent: ptr.To[int32](25)})), wantPhase: v1alpha1.PhasePassed,
			wantMessage: []string{"would inject 1 fault(s) into " + open + "/web-"}, wantTargets: 1, wantSeed: true,
		},
		"every target, when the bounds allow them all, records no seed (dry run)": {
			exp: experiment("default", onPods(open), dryRun(), safety(v1alpha1.Safety{MaxTargets: ptr.To[int32](4)})), wantPhase: v1alpha1.PhasePassed,
			wantMessage: []string{"into " + open + "/web-0, " + open + "/web-1, " + open + "/web-2, " + open + "/web-3"}, wantTargets: 4,
		},
		"a share that allows no target is refused": {
			exp: experiment("default", onPods(open), dryRun(), safety(v1alpha1.Safety{MaxTargetPercent: ptr.To[int32](1)})), wantPhase: v1alpha1.PhaseError, wantReason: v1alpha1.ReasonRefused,
			wantMessage: []string{"spec.safety: the blast-radius bounds allow no target out of 4"},
		},
		"nodes by name are targets in any namespace's experiment (dry run)": {
			exp: experiment("default", onNodes("node-a", "node-b"), dryRun()), wantPhase: v1alpha1.PhasePassed, wantMessage: []string{"into node-a, node-b"},
		},
		"a node that does not exist is named": {
			exp: experiment("default", onNodes("node-z")), wantPhase: v1alpha1.PhaseError, wantReason: v1alpha1.ReasonTargetsUnresolved,
			wantMessage: []string{`spec.targets.nodes.names: node "node-z"`},
		},
		"a memory size above a container's limit is refused, naming pushPastLimit": {
			exp: experiment("default", onPods(open), memory("1Gi"), safety(v1alpha1.Safety{MaxTargets: ptr.To[int32](1)})), wantPhase: v1alpha1.PhaseError, wantReason: v1alpha1.ReasonInvalid,
			wantMessage: []string{"memoryPressure.size: 1Gi is above the memory limit of container web", "pushPastLimit"}, wantSeed: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			create(t, tc.exp)
			waitFor(t, tc.exp, 10*time.Second, "a verdict", final)
			e := tc.exp
			if e.Status.Phase != tc.wantPhase {
				t.Errorf("phase %s (%s), want %s", e.Status.Phase, e.Status.Message, tc.wantPhase)
			}
			for _, w := range tc.wantMessage {
				if !strings.Contains(e.Status.Message, w) {
					t.Errorf("message %q lacks %q", e.Status.Message, w)
				}
			}
			if tc.wantReason != "" {
				r := meta.FindStatusCondition(e.Status.Conditions, v1alpha1.ConditionReady)
				if r == nil || r.Status != metav1.ConditionFalse || r.Reason != tc.wantReason {
					t.Errorf("Ready %+v, want False with reason %s", r, tc.wantReason)
				}
			}
			if tc.wantTargets != 0 && len(e.Status.Targets) != tc.wantTargets {
				t.Errorf("targets %v, want %d", e.Status.Targets, tc.wantTargets)
			}
			if got := e.Status.TargetSeed != nil; got != tc.wantSeed {
				t.Errorf("status.targetSeed %v, want one: %v", ptr.Deref(e.Status.TargetSeed, -1), tc.wantSeed)
			}
			if len(e.Finalizers) != 1 {
				t.Errorf("finalizers %v: the finalizer goes on before the plan", e.Finalizers)
			}
		})
	}
}

// The kill switch refuses new experiments, and stops a running one: every
// fault is recovered and the experiment ends Aborted.
func TestTheKillSwitchRefusesNewExperimentsAndStopsRunningOnes(t *testing.T) {
	ctx := context.Background()
	node(t, "node-a")
	running := experiment("default", onNodes("node-a"), lasting(time.Minute))
	create(t, running)
	waitFor(t, running, 10*time.Second, "the experiment to run", func(e *v1alpha1.Experiment) bool { return e.Status.Phase == v1alpha1.PhaseRunning })

	sw := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: "faultline-kill-switch"}, Data: map[string]string{"enabled": "true"}}
	if err := k8s.Create(ctx, sw); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = k8s.Delete(ctx, sw) }()
	waitFor(t, running, 15*time.Second, "the running experiment to be aborted", final)
	if running.Status.Phase != v1alpha1.PhaseAborted || !strings.Contains(running.Status.Message, "the kill switch is on") {
		t.Errorf("running experiment: %s (%s), want Aborted by the kill switch", running.Status.Phase, running.Status.Message)
	}
	for _, rec := range running.Status.Records {
		if rec.RecoveredAt == nil || rec.RecoveredAt.Sub(running.Status.StartTime.Time) > 30*time.Second {
			t.Errorf("record %+v: want recovered at the abort, long before the minute's deadline", rec)
		}
	}

	refused := experiment("default", onNodes("node-a"))
	create(t, refused)
	waitFor(t, refused, 10*time.Second, "a verdict", final)
	if refused.Status.Phase != v1alpha1.PhaseError || !strings.Contains(refused.Status.Message, "the kill switch is on (ConfigMap "+Namespace+"/faultline-kill-switch)") {
		t.Errorf("new experiment: %s (%s), want Error naming the kill switch", refused.Status.Phase, refused.Status.Message)
	}
}
